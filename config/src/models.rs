//! Finds model files by size letter (docs/architecture.md#models), deterministically — the one
//! place the detector (which loads them) and oriond and orion-setup (which check for them
//! before anything starts) look:
//!
//! - 640 input: `yolo11{size}.onnx`, else `yolo11{size}_640.onnx` (the seed's and
//!   `models/download_models.sh`'s name), else the first (sorted by name)
//!   `yolo11{size}_*_640.onnx` (e.g. `yolo11m_fp32_640.onnx`);
//! - 320 input (optional): `yolo11{size}_320.onnx`, else the first (sorted)
//!   `yolo11{size}_*_320.onnx`.
//!
//! The worker checks that each file's input really is 640 or 320 when it loads it.

use std::path::{Path, PathBuf};

use orion_protocol::ModelSize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub size: ModelSize,
    pub path_640: PathBuf,
    pub path_320: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("model directory {dir} cannot be read: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no 640 model for size {size} in {dir} (looked for yolo11{size}.onnx, yolo11{size}_640.onnx and yolo11{size}_*_640.onnx)"
    )]
    Missing { size: ModelSize, dir: PathBuf },
}

pub fn discover(dir: &Path, size: ModelSize) -> Result<ModelFiles, DiscoveryError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| DiscoveryError::Dir {
            dir: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let exact = |name: String| names.contains(&name).then_some(name);
    let variant = |imgsz: u32| {
        let (prefix, suffix) = (format!("yolo11{size}_"), format!("_{imgsz}.onnx"));
        names
            .iter()
            .find(|n| {
                n.len() > prefix.len() + suffix.len()
                    && n.starts_with(&prefix)
                    && n.ends_with(&suffix)
            })
            .cloned()
    };
    let path_640 = exact(format!("yolo11{size}.onnx"))
        .or_else(|| exact(format!("yolo11{size}_640.onnx")))
        .or_else(|| variant(640))
        .map(|n| dir.join(n))
        .ok_or_else(|| DiscoveryError::Missing {
            size,
            dir: dir.to_owned(),
        })?;
    let path_320 = exact(format!("yolo11{size}_320.onnx"))
        .or_else(|| variant(320))
        .map(|n| dir.join(n));
    Ok(ModelFiles {
        size,
        path_640,
        path_320,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("orion-models-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        dir
    }

    #[test]
    fn plain_name_wins_then_sorted_variants() {
        let dir = dir_with(&[
            "yolo11n.onnx",
            "yolo11n_b_640.onnx",
            "yolo11n_b_320.onnx",
            "yolo11n_a_320.onnx",
            "yolo11s_x_640.onnx",
        ]);
        let n = discover(&dir, ModelSize::N).unwrap();
        assert_eq!(n.path_640, dir.join("yolo11n.onnx"));
        assert_eq!(n.path_320, Some(dir.join("yolo11n_a_320.onnx")));
        let s = discover(&dir, ModelSize::S).unwrap();
        assert_eq!(
            (s.path_640, s.path_320),
            (dir.join("yolo11s_x_640.onnx"), None)
        );
        let err = discover(&dir, ModelSize::X).unwrap_err().to_string();
        assert!(
            err.contains("yolo11x.onnx") && err.contains("yolo11x_*_640.onnx"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_seeds_names_are_found() {
        let dir = dir_with(&[
            "yolo11m_640.onnx",
            "yolo11m_320.onnx",
            "yolo11m_fp32_640.onnx",
            "yolo11l_fp32_640.onnx",
            "yolo11l_fp32_320.onnx",
        ]);
        let m = discover(&dir, ModelSize::M).unwrap();
        assert_eq!(m.path_640, dir.join("yolo11m_640.onnx"));
        assert_eq!(m.path_320, Some(dir.join("yolo11m_320.onnx")));
        let l = discover(&dir, ModelSize::L).unwrap();
        assert_eq!(l.path_640, dir.join("yolo11l_fp32_640.onnx"));
        assert_eq!(l.path_320, Some(dir.join("yolo11l_fp32_320.onnx")));
        let err = discover(&dir, ModelSize::N).unwrap_err().to_string();
        assert!(err.contains("yolo11n_640.onnx"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unreadable_dir_is_a_clear_error() {
        let err = discover(Path::new("/no/such/models"), ModelSize::N)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/models cannot be read"), "{err}");
    }
}

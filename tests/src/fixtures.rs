//! Where tests and benchmarks find the repository's fixtures (`models/fetch_fixtures.sh`),
//! the venv (`scripts/setup-python.sh`), and decoded footage.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The repository root (this crate lives in `tests/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `fixtures/<rel>`, or an error saying how to fetch it.
pub fn fixture(rel: &str) -> Result<PathBuf> {
    let p = repo().join("fixtures").join(rel);
    if !p.exists() {
        bail!("{} missing: run models/fetch_fixtures.sh", p.display());
    }
    Ok(p)
}

/// The venv's interpreter (`$ORION_VENV`, default `.venv`).
pub fn python() -> Result<PathBuf> {
    let venv = std::env::var_os("ORION_VENV").map_or_else(|| repo().join(".venv"), PathBuf::from);
    let py = venv.join("bin/python");
    if !py.is_file() {
        bail!("{} missing: run scripts/setup-python.sh", py.display());
    }
    Ok(py)
}

/// The sample footage decoded at `rate` frames per second of video (a caps fraction such
/// as "1/4") into tightly packed `w`×`h` RGB frames.
pub fn footage(w: u32, h: u32, rate: &str) -> Result<Vec<Vec<u8>>> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("orion-footage-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let video = fixture("footage/sample.mp4")?;
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", video.display()))
        .args([
            "!",
            "decodebin",
            "!",
            "videorate",
            "!",
            &format!("video/x-raw,framerate={rate}"),
            "!",
            "videoconvert",
        ])
        .args([
            "!",
            "videoscale",
            "!",
            &format!("video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1"),
        ])
        .args(["!", "multifilesink"])
        .arg(format!("location={}/f%04d.rgb", dir.display()))
        .status()
        .context("run gst-launch-1.0")?;
    let frames = (|| {
        if !status.success() {
            bail!("decoding {} failed", video.display());
        }
        let mut files: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        Ok(files
            .iter()
            .map(std::fs::read)
            .collect::<std::io::Result<Vec<_>>>()?)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let frames = frames?;
    if frames.is_empty() || frames.iter().any(|f| f.len() != (w * h * 3) as usize) {
        bail!("decoded footage has no frames of {w}x{h} RGB");
    }
    Ok(frames)
}

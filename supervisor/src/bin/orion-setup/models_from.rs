//! `orion-setup --models-from DIR`: checks every `.onnx` file in DIR the way the worker will
//! load it (`python -m orion_worker.inspect_model` in the configured interpreter: opset,
//! input and output shapes, a person class among the names) and installs the good ones
//! into `detector.model_dir` under the names discovery finds, `yolo11{size}_{imgsz}.onnx`.
//! The size letter comes from the file name (`yolo11{size}…`, as Ultralytics names its
//! exports), the input size from the model itself. A file is copied to a temporary name
//! and renamed, so oriond never sees half a model.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use orion_config::Config;
use orion_protocol::ModelSize;
use serde::Deserialize;

/// Most model files looked at in one go.
const MAX_FILES: usize = 64;

/// What the inspector reports of one file.
#[derive(Debug, Deserialize)]
struct Report {
    path: PathBuf,
    ok: bool,
    error: Option<String>,
    opset: Option<u64>,
    imgsz: Option<u32>,
    output: Option<Vec<serde_json::Value>>,
    names: Option<Vec<String>>,
}

/// The size letter an Ultralytics export's name starts with: `yolo11m_640.onnx` → m.
fn size_of(name: &str) -> Option<ModelSize> {
    let letter = name.strip_prefix("yolo11")?.get(..1)?;
    let rest = &name["yolo11".len() + 1..];
    if !(rest.starts_with('_') || rest.starts_with('.') || rest.starts_with('-')) {
        return None;
    }
    letter.parse().ok()
}

/// Checks and installs; one line per file. Fails if any file was not installed.
pub fn install(from: &Path, config: &Config, worker_dir: &Path) -> Result<String> {
    // The inspector runs in `/`: hand it absolute paths.
    let from = &std::fs::canonicalize(from)
        .with_context(|| format!("--models-from {} cannot be read", from.display()))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(from)
        .with_context(|| format!("--models-from {} cannot be read", from.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("--models-from {}: no .onnx files there", from.display());
    }
    if files.len() > MAX_FILES {
        bail!(
            "--models-from {}: {} .onnx files, more than {MAX_FILES}",
            from.display(),
            files.len()
        );
    }
    let reports = inspect(&files, config, worker_dir)?;
    let dest = &config.detector.model_dir;
    std::fs::create_dir_all(dest)
        .with_context(|| format!("create detector.model_dir {}", dest.display()))?;
    let mut lines = Vec::new();
    let mut failed = 0;
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    for r in reports {
        match placement(&r).and_then(|name| {
            if let Some(first) = taken.get(&name) {
                bail!("{name} comes from {} already", first.display());
            }
            copy_atomic(&r.path, &dest.join(&name))?;
            taken.insert(name.clone(), r.path.clone());
            Ok(name)
        }) {
            Ok(name) => lines.push(format!(
                "  installed {} ← {} (input {}, output {}, opset {}, classes {})",
                dest.join(&name).display(),
                r.path.display(),
                r.imgsz.unwrap_or(0),
                serde_json::to_string(&r.output).unwrap_or_default(),
                r.opset.unwrap_or(0),
                describe_names(r.names.as_deref().unwrap_or_default()),
            )),
            Err(e) => {
                failed += 1;
                lines.push(format!("  NOT installed {}: {e:#}", r.path.display()));
            }
        }
    }
    let text = lines.join("\n");
    if failed > 0 {
        bail!("{failed} model file(s) not installed:\n{text}");
    }
    Ok(format!("installed into {}:\n{text}", dest.display()))
}

fn describe_names(names: &[String]) -> String {
    match names.len() {
        0..=4 => names.join(", "),
        n => format!("{}, … ({n})", names[..3].join(", ")),
    }
}

/// Where a checked file goes, or why it does not.
fn placement(r: &Report) -> Result<String> {
    if !r.ok {
        bail!(
            "{}",
            r.error.as_deref().unwrap_or("rejected by the inspector")
        );
    }
    let name = r
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let size = size_of(name).with_context(|| {
        format!("cannot tell its size from the name {name:?}; name it yolo11{{n,s,m,l,x}}_….onnx")
    })?;
    let imgsz = r.imgsz.context("the inspector gave no input size")?;
    Ok(format!("yolo11{size}_{imgsz}.onnx"))
}

/// Runs the inspector on `files` in the worker's own interpreter.
fn inspect(files: &[PathBuf], config: &Config, worker_dir: &Path) -> Result<Vec<Report>> {
    let python = &config.detector.python;
    orion_config::trust::root_may_run(python)
        .map_err(|why| anyhow::anyhow!("detector.python: {why}"))?;
    let out = Command::new(python)
        .current_dir("/")
        .args(["-P", "-m", "orion_worker.inspect_model", "--classes"])
        .arg(config.detector.classes.join(","))
        .args(files)
        .env("PYTHONPATH", worker_dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<Report> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("unreadable report from the model inspector")?;
    if reports.len() != files.len() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "the model inspector ({} -m orion_worker.inspect_model) failed: {}",
            python.display(),
            err.lines().last().unwrap_or("no output").trim()
        );
    }
    Ok(reports)
}

/// Copies `from` to `to` through a temporary file in the same directory, readable by all
/// (a model is no secret; oriond's user must read it).
fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().context("model path has no directory")?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut src = File::open(from).with_context(|| format!("open {}", from.display()))?;
        let mut dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        std::io::copy(&mut src, &mut dst).with_context(|| format!("copy to {}", tmp.display()))?;
        dst.flush()?;
        dst.sync_all()?;
        std::fs::rename(&tmp, to).with_context(|| format!("rename to {}", to.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_ultralytics_names() {
        for (name, size) in [
            ("yolo11m_640.onnx", Some(ModelSize::M)),
            ("yolo11n.onnx", Some(ModelSize::N)),
            ("yolo11s_fp32_320.onnx", Some(ModelSize::S)),
            ("yolo11x-pose.onnx", Some(ModelSize::X)),
            ("yolo11q_640.onnx", None),
            ("yolo11mm.onnx", None),
            ("yolov8n.onnx", None),
            ("yolo11", None),
        ] {
            assert_eq!(size_of(name), size, "{name}");
        }
    }
}

//! Checks before anything starts, each with an error an operator can act on: the child
//! binaries exist, the model directory holds the configured model, the Python environment
//! imports what the worker needs, and the state directory is writable. (/dev/shm space is
//! checked when the ring is created.)

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use orion_config::Config;
use orion_protocol::ModelSize;

use crate::spec;

pub fn check(config: &Config, size: ModelSize) -> Result<()> {
    config.check_secrets()?;
    let bin = spec::bin_dir(config);
    let mut programs = vec!["orion-capture", "orion-detector"];
    if config.mqtt.enabled {
        programs.push("orion-control");
    }
    for program in programs {
        let path = bin.join(program);
        ensure!(
            path.is_file(),
            "{} not found (supervisor.bin_dir = {})",
            path.display(),
            bin.display()
        );
    }
    // Snapshots only: without the helper everything else works, and a snapshot says why not.
    let helper = bin.join("orion-snapshot");
    if !helper.is_file() {
        tracing::warn!(path = %helper.display(), "orion-snapshot not found: snapshots will fail");
    }
    if config.mqtt.enabled && config.mqtt.embedded {
        let broker = &config.mqtt.broker_program;
        ensure!(
            broker.is_file(),
            "mqtt.embedded runs mqtt.broker_program = {}, which is not installed (apt install mosquitto)",
            broker.display()
        );
    }
    orion_config::models::discover(&config.detector.model_dir, size)
        .with_context(|| "detector.model_dir".to_string())?;
    if let Some(dir) = &config.detector.worker_dir {
        ensure!(
            dir.join("orion_worker").join("__main__.py").is_file(),
            "detector.worker_dir: {} does not contain the orion_worker package",
            dir.display()
        );
    }
    python(&config.detector.python)?;
    Ok(())
}

fn python(python: &Path) -> Result<()> {
    let out = std::process::Command::new(python)
        .args(["-c", "import onnxruntime, numpy, msgpack"])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("detector.python: cannot run {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        bail!(
            "detector.python: {} cannot import onnxruntime, numpy and msgpack ({last}); create the venv with the package's setup command",
            python.display()
        );
    }
    Ok(())
}

/// Creates the state directory (0750) and checks it is writable.
pub fn state_dir(config: &Config) -> Result<()> {
    let dir = &config.supervisor.state_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("supervisor.state_dir: create {}", dir.display()))?;
    let probe = dir.join(format!(".oriond-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("supervisor.state_dir: {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

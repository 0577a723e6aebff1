//! `orion-setup`: makes a box ready to run oriond, and says exactly what is missing.
//!
//! 0. its identity: a config without `instance_id` gets one derived from the machine
//!    (`identity.rs`), so two boxes never share one by default;
//! 1. the worker's Python environment: creates or repairs the venv that
//!    `detector.python` names (e.g. /usr/lib/orion/venv/bin/python3) with the worker's
//!    pinned requirements, from the package index or, on an offline device, from a
//!    directory of wheels (`--wheels DIR`). Run as root, it never runs Python another user
//!    could change (`orion_config::trust`): the venv it makes is root's, read-only to the
//!    service user, and one that is not root's is refused, not run;
//! 2. the models: with `--models-from DIR`, the `.onnx` files there checked as the worker
//!    will load them and installed under the names discovery finds (`models_from.rs`);
//!    then which sizes have a 640 and a 320 model in `detector.model_dir`, and the file
//!    names the configured size still needs;
//! 3. `oriond --check-config` on the same config.
//!
//! Exit 0 when everything is ready, 1 when something is missing (each reported), 2 on a
//! config oriond would refuse. Every program is run with fixed arguments (no shell).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::Parser;
use orion_config::Config;
use orion_protocol::ModelSize;
use orion_supervisor::cli::setup::Args;

mod identity;
mod models_from;

fn main() -> ExitCode {
    let args = Args::parse();
    // First, so that everything after reads the config with its own instance id.
    let identity = identity::ensure(&args.config);
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orion-setup: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let mut missing = 0;
    match identity {
        Ok(report) => println!("identity: {report}"),
        Err(e) => {
            missing += 1;
            println!("identity: MISSING: {e:#}");
        }
    }
    let install = |from: &Path| models_from::install(from, &config, &worker_dir(&config)?);
    let steps: [(&str, &dyn Fn() -> Result<String>); 4] = [
        ("python", &|| venv(&args, &config)),
        ("install", &|| match &args.models_from {
            Some(from) => install(from),
            None => Ok("nothing to install (--models-from DIR installs models)".into()),
        }),
        ("models", &|| models(&config)),
        ("config", &|| check_config(&args.config)),
    ];
    for (step, run) in steps {
        match run() {
            Ok(report) => println!("{step}: {report}"),
            Err(e) => {
                missing += 1;
                println!("{step}: MISSING: {e:#}");
            }
        }
    }
    if missing == 0 {
        println!("ready: start oriond (systemctl enable --now oriond)");
        ExitCode::SUCCESS
    } else {
        println!("not ready: {missing} step(s) above need attention");
        ExitCode::FAILURE
    }
}

/// The venv directory of an interpreter path `…/venv/bin/python3`.
fn venv_dir(python: &Path) -> Result<PathBuf> {
    let bin = python.parent().filter(|b| b.ends_with("bin"));
    match bin.and_then(Path::parent) {
        Some(dir) => Ok(dir.to_path_buf()),
        None => bail!(
            "detector.python = {} is not inside a venv (…/venv/bin/python3); point it at one",
            python.display()
        ),
    }
}

fn imports_ok(python: &Path) -> Result<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import onnxruntime, numpy, msgpack; print('onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)",
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{} cannot import the worker's packages: {}",
            python.display(),
            err.lines().last().unwrap_or("").trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The directory holding the `orion_worker` package: the config's, else the installed one.
fn worker_dir(config: &Config) -> Result<PathBuf> {
    match &config.detector.worker_dir {
        Some(dir) => Ok(dir.clone()),
        None => {
            let exe = std::env::current_exe().context("locate orion-setup")?;
            exe.parent()
                .map(|bin| bin.join("../lib/orion/python"))
                .context("orion-setup has no directory")
        }
    }
}

fn requirements(args: &Args, config: &Config) -> Result<PathBuf> {
    if let Some(r) = &args.requirements {
        return Ok(r.clone());
    }
    let file = worker_dir(config)?.join("requirements.txt");
    if !file.is_file() {
        bail!("{} not found; pass --requirements FILE", file.display());
    }
    Ok(file)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn venv(args: &Args, config: &Config) -> Result<String> {
    let python = &config.detector.python;
    let trusted = || {
        orion_config::trust::root_may_run(python)
            .map_err(|why| anyhow::anyhow!("detector.python: {why}"))
    };
    let exists = python.exists();
    if exists {
        trusted()?;
        if let Ok(versions) = imports_ok(python) {
            return Ok(format!("{} ready ({versions})", python.display()));
        }
    }
    if args.no_venv {
        return imports_ok(python);
    }
    let dir = venv_dir(python)?;
    let reqs = requirements(args, config)?;
    println!("python: creating {} ...", dir.display());
    run(
        Command::new(&args.base_python)
            .arg("-m")
            .arg("venv")
            .arg(&dir),
        &format!(
            "{} -m venv (on Debian: apt install python3-venv)",
            args.base_python.display()
        ),
    )?;
    let pip = dir.join("bin/python3");
    let mut install = Command::new(&pip);
    install.args(["-m", "pip", "install", "--disable-pip-version-check", "-r"]);
    install.arg(&reqs);
    if let Some(wheels) = &args.wheels {
        install.arg("--no-index").arg("--find-links").arg(wheels);
    }
    let source = match &args.wheels {
        Some(w) => format!("pip install from {}", w.display()),
        None => "pip install from the package index".to_string(),
    };
    // Only root's files from here: the fresh venv and the folders above it.
    trusted()?;
    println!("python: {source} ...");
    run(&mut install, &source)?;
    trusted()?;
    let versions = imports_ok(python)?;
    Ok(format!("{} created ({versions})", python.display()))
}

fn models(config: &Config) -> Result<String> {
    let dir = &config.detector.model_dir;
    if !dir.is_dir() {
        bail!(
            "detector.model_dir {} does not exist; install models there with `orion-setup --models-from DIR` (models/download_models.sh exports yolo11{}_640.onnx and the others)",
            dir.display(),
            config.detector.size
        );
    }
    let mut table = Vec::new();
    for size in ModelSize::ALL {
        let found = orion_config::models::discover(dir, size).ok();
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let entry = match &found {
            Some(f) => format!(
                "{size}: 640 {}, 320 {}",
                name(&f.path_640),
                f.path_320.as_deref().map_or("-".to_string(), name)
            ),
            None => format!("{size}: -"),
        };
        table.push(entry);
    }
    let size = config.detector.size;
    if orion_config::models::discover(dir, size).is_err() {
        bail!(
            "the configured size {size} needs {}/yolo11{size}_640.onnx (or yolo11{size}.onnx, yolo11{size}_NAME_640.onnx; a yolo11{size}_320.onnx is used for small regions; `orion-setup --models-from DIR` installs exports of models/download_models.sh); found {}",
            dir.display(),
            table.join("; ")
        );
    }
    Ok(format!("{} ({})", dir.display(), table.join("; ")))
}

fn check_config(config: &Path) -> Result<String> {
    let exe = std::env::current_exe().context("locate orion-setup")?;
    let oriond = exe
        .parent()
        .map(|d| d.join("oriond"))
        .context("orion-setup has no directory")?;
    let out = Command::new(&oriond)
        .arg("--check-config")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", oriond.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("oriond --check-config: {}", text.trim());
    }
    Ok(format!("oriond --check-config: {}", text.trim()))
}

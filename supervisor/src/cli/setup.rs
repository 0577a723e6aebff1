//! `orion-setup`'s command line (see `src/bin/orion-setup`).

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "orion-setup", version, about = "Prepare this box for oriond")]
pub struct Args {
    /// Orion's configuration
    #[arg(long, default_value = orion_config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Install the Python packages from this directory of wheels (no network)
    #[arg(long)]
    pub wheels: Option<PathBuf>,
    /// The worker's requirements (default: requirements.txt of the installed worker)
    #[arg(long)]
    pub requirements: Option<PathBuf>,
    /// The interpreter that creates the venv
    #[arg(long, default_value = "/usr/bin/python3")]
    pub base_python: PathBuf,
    /// Leave the venv alone (only check it)
    #[arg(long)]
    pub no_venv: bool,
    /// Check the .onnx files in this directory and install them into detector.model_dir
    /// (as yolo11{size}_{640,320}.onnx)
    #[arg(long, value_name = "DIR")]
    pub models_from: Option<PathBuf>,
}

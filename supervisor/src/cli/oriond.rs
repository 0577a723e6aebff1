//! oriond's command line.

use std::path::PathBuf;

use clap::Parser;

/// Orion's supervisor.
#[derive(Parser, Debug)]
#[command(
    name = "oriond",
    version,
    about = "Orion's supervisor: one care room's camera, person detection and MQTT",
    long_about = "Orion's supervisor: validates the configuration, creates the frame ring and its socket, starts the MQTT control, the detector (with its Python ONNX Runtime worker) and the sandboxed capture, restarts whichever ends, and applies commands live. Started by systemd (oriond.service, oriond@NAME.service); controlled with orionctl; SIGHUP reloads the configuration."
)]
pub struct Args {
    /// Configuration file
    #[arg(long, default_value = orion_config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Validate the config and the environment (models, Python, binaries), then exit
    #[arg(long)]
    pub check_config: bool,
}

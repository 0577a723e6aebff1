//! `orionctl`'s command line (here, not in the binary, so that the man page and the shell
//! completions are generated from the same definition).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "orionctl", version, about = "Control a running oriond")]
pub struct Cli {
    /// oriond's configuration (to find its socket)
    #[arg(long, default_value = orion_config::DEFAULT_PATH, global = true)]
    pub config: PathBuf,
    /// oriond's socket (instead of reading the config)
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// The instance to talk to (several rooms per box): reads /etc/orion/NAME.toml, else
    /// uses /run/orion/oriond-NAME.sock
    #[arg(short = 'i', long, global = true)]
    pub instance: Option<String>,
    /// Print oriond's answers as JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub verb: Option<Verb>,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Process states (exit 3 if any listed is not RUNNING, 4 for an unknown name, 5 if all
    /// run but the camera or the detector does not work)
    Status { names: Vec<String> },
    /// Start processes (clears FATAL)
    Start {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop processes (reverse start order for `all`)
    Stop {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop, then start processes
    Restart {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// oriond's pid, or a process's
    Pid { name: Option<String> },
    /// A process's recent output
    Tail {
        /// Keep printing new output
        #[arg(short = 'f')]
        follow: bool,
        /// How many bytes of the end to show
        #[arg(long, default_value_t = 1600)]
        bytes: u64,
        name: String,
    },
    /// Stop every process and oriond
    Shutdown,
    /// Re-read the config file and apply it
    Reload,
    /// Pause inference (capture keeps running)
    Pause,
    /// Resume inference
    Resume,
    /// Set the inference rate (restarts capture only); without HZ on a terminal, shows the
    /// last measured interruption and asks
    Rate { hz: Option<f64> },
    /// Switch the model size (n, s, m, l, x) without a pause; without SIZE on a terminal,
    /// lists the sizes on disk with their measured inference times and asks
    Model { size: Option<String> },
    /// Attention regions: `rois set X,Y,W,H [X,Y,W,H …]`, `rois clear`, `rois get`
    Rois { action: String, rects: Vec<String> },
    /// Auto-focus: `focus on|off|stats|clear|get`, `focus strategy NAME [--alpha …]`
    Focus {
        action: String,
        strategy: Option<String>,
        #[arg(long)]
        alpha: Option<f64>,
        #[arg(long)]
        velocity_threshold: Option<f64>,
        #[arg(long)]
        velocity_factor: Option<f64>,
        #[arg(long)]
        max_expansion: Option<f64>,
    },
    /// Full status as JSON (processes, stream, detector, desired state)
    GetStatus,
    /// The counters and the latency histogram in the OpenMetrics text format (for
    /// Prometheus; oriond writes the same to `[metrics] textfile`)
    Metrics,
    /// Save the newest frame with the last boxes, the attention ROIs, the auto-focus region
    /// and a caption drawn (PNG; JPEG if FILE ends in .jpg or .jpeg)
    Snapshot {
        /// Where to save it (default: orion-snapshot-FRAME.png here)
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

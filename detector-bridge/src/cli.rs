//! Command line of `orion-detector`: arguments, validation, the process body.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use orion_process::ring_arg::RingArg;
use orion_protocol::limits::{
    ClassNames, Confidence, FullLook, Iou, RangeError, Threads, Threshold320, WorkerTimeout,
};
use orion_protocol::{InstanceId, ModelSize};
use orion_ring::RingReader;

use crate::bridge::{Bridge, Settings};
use crate::tensors::TensorBuffer;
use crate::worker::WorkerConfig;

/// Runs person detection on the newest frames of an Orion frame ring.
///
/// Results, acks and status go to stdout as JSON lines; commands (JSON lines:
/// pause_inference, resume_inference, set_model_size, get_status) come on stdin; logs on
/// stderr. Exits 0 on SIGTERM/SIGINT, 2 on bad arguments, 1 on a fatal error.
#[derive(Parser, Debug, Clone)]
#[command(name = "orion-detector", version)]
pub struct Args {
    /// Frame ring to read by name, e.g. /orion-room1-frames
    #[arg(long)]
    pub ring: Option<String>,
    /// Frame ring to read as an inherited descriptor (how oriond runs the detector)
    #[arg(long)]
    pub ring_fd: Option<i32>,
    /// Instance id ([A-Za-z0-9_-]+): labels the tensor buffer and goes into every message
    #[arg(long)]
    pub instance_id: String,
    #[arg(long, default_value = "")]
    pub room_id: String,
    /// Directory with yolo11{size}.onnx / yolo11{size}_{640,320}.onnx / yolo11{size}_*_{640,320}.onnx
    #[arg(long)]
    pub model_dir: PathBuf,
    /// Initial model size: n, s, m, l or x
    #[arg(long, default_value = "n")]
    pub size: String,
    /// Python interpreter with onnxruntime, numpy and msgpack
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Directory holding the orion_worker package (default: ../lib/orion/python next to
    /// this binary, else the repository's python/)
    #[arg(long)]
    pub worker_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    #[arg(long, default_value_t = 0.25)]
    pub confidence: f32,
    #[arg(long, default_value_t = 0.45)]
    pub iou: f32,
    /// Class names that count as a person, comma-separated
    #[arg(long, default_value = "person")]
    pub classes: String,
    /// Regions of at most this many pixels use the 320 model (if one is loaded)
    #[arg(long, default_value_t = 102_400)]
    pub threshold_320: u64,
    /// Seconds an inference may take before the worker counts as hung and is restarted
    #[arg(long, default_value_t = 10.0)]
    pub worker_timeout_s: f64,
    #[arg(long, default_value_t = 1000)]
    pub status_interval_ms: u64,
    /// Start with auto-focus on (it follows people when no attention ROIs are set)
    #[arg(long)]
    pub auto_focus: bool,
    /// Start paused: no frame is inferred before a resume_inference command
    #[arg(long)]
    pub paused: bool,
    /// Auto-focus strategy: simple, smoothing or velocity
    #[arg(long, default_value = "smoothing")]
    pub auto_focus_strategy: String,
    /// While attention ROIs or auto-focus crop the frame, look at the whole frame at least
    /// every this many seconds (oriond turns occupancy empty only after such a look)
    #[arg(long, default_value_t = 5.0)]
    pub full_look_s: f64,
    /// Never force a full look (for measuring what a partial view misses; not for rooms)
    #[arg(long, hide = true)]
    pub no_full_look: bool,
    /// Keep a second worker with the model loaded that takes over at once when the worker
    /// dies (costs its memory: see detector-bridge/README.md)
    #[arg(long)]
    pub spare_worker: bool,
    /// Stand by for oriond: load the worker (at a low CPU priority), report `standby`, and
    /// infer nothing until oriond says take over (the detector before has died)
    #[arg(long)]
    pub standby: bool,
}

fn validate(a: &Args) -> Result<Settings> {
    let instance_id =
        InstanceId::new(&a.instance_id).map_err(|e| anyhow::anyhow!("instance_id {e}"))?;
    if a.room_id.len() > 128 {
        bail!("room_id must be at most 128 characters");
    }
    let size: ModelSize = a.size.parse().context("--size")?;
    let range = |what: &str, e: RangeError| anyhow::anyhow!("{what} {e}");
    let threads = Threads::new(a.threads).map_err(|e| range("threads", e))?;
    let confidence =
        Confidence::new(f64::from(a.confidence)).map_err(|e| range("confidence", e))?;
    let iou = Iou::new(f64::from(a.iou)).map_err(|e| range("iou", e))?;
    let classes = ClassNames::parse(&a.classes).map_err(|e| range("classes", e))?;
    let worker_timeout =
        WorkerTimeout::new(a.worker_timeout_s).map_err(|e| range("worker_timeout_s", e))?;
    Threshold320::new(a.threshold_320).map_err(|e| range("threshold_320", e))?;
    if !(100..=60_000).contains(&a.status_interval_ms) {
        bail!(
            "status_interval_ms must be in 100..=60000, got {}",
            a.status_interval_ms
        );
    }
    if !a.model_dir.is_dir() {
        bail!(
            "model_dir {} is not a readable directory",
            a.model_dir.display()
        );
    }
    let package_dir = match &a.worker_dir {
        Some(dir) => dir.clone(),
        None => default_worker_dir()
            .context("cannot find the orion_worker package; pass --worker-dir")?,
    };
    if !package_dir
        .join("orion_worker")
        .join("__main__.py")
        .is_file()
    {
        bail!(
            "{} does not contain the orion_worker package",
            package_dir.display()
        );
    }
    let strategy = serde_json::from_value(serde_json::Value::String(a.auto_focus_strategy.clone()))
        .map_err(|_| {
            anyhow::anyhow!(
                "auto_focus_strategy must be simple, smoothing or velocity, got {:?}",
                a.auto_focus_strategy
            )
        })?;
    let update = crate::autofocus::ParamsUpdate {
        strategy: Some(strategy),
        ..Default::default()
    };
    let auto_focus_params = crate::autofocus::Params::default()
        .with(&update)
        .map_err(anyhow::Error::msg)?;
    let full_look = FullLook::new(a.full_look_s).map_err(|e| range("full_look_s", e))?;
    Ok(Settings {
        full_look: (!a.no_full_look).then(|| Duration::from_secs_f64(full_look.get())),
        auto_focus: a.auto_focus,
        paused: a.paused,
        spare_worker: a.spare_worker,
        standby: a.standby,
        auto_focus_params,
        ring: RingArg::new(a.ring.as_deref(), a.ring_fd)?,
        instance_id,
        room_id: a.room_id.clone(),
        model_dir: a.model_dir.clone(),
        size,
        threshold_320: a.threshold_320,
        worker: WorkerConfig {
            python: a.python.clone(),
            package_dir,
            threads: threads.get(),
            classes: classes.names().to_vec(),
            confidence: confidence.get() as f32,
            iou: iou.get() as f32,
        },
        worker_timeout: Duration::from_secs_f64(worker_timeout.get()),
        status_interval: Duration::from_millis(a.status_interval_ms),
    })
}

/// The installed layout (/usr/bin/orion-detector → /usr/lib/orion/python), else the
/// repository's python/ (target/{debug,release}/orion-detector → ../../python).
fn default_worker_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?;
    [
        bin.join("../lib/orion/python"),
        bin.join("../../python"),
        bin.join("../../../python"),
    ]
    .into_iter()
    .find(|d| d.join("orion_worker").is_dir())
}

pub fn main() -> ExitCode {
    init_logging();
    run_with(&Args::parse())
}

/// Structured logs on stderr (see `orion_process::init_logging`).
pub fn init_logging() {
    orion_process::init_logging();
}

pub fn run_with(args: &Args) -> ExitCode {
    orion_process::run_main("orion-detector", validate(args), run)
}

fn run(settings: Settings) -> Result<()> {
    let shutdown = orion_process::child_setup()?;
    orion_process::channel::open(orion_protocol::ProcessName::Detector)?;
    let ring = settings.ring.source(&settings.instance_id.ring_label())?;
    let reader =
        RingReader::attach(ring.clone()).with_context(|| format!("attach to ring {ring}"))?;
    let tensors = TensorBuffer::create(&settings.instance_id.tensors_label())
        .context("create the tensor buffer")?;
    let mut bridge = Bridge::new(settings, ring, reader, tensors)?;
    let ran = bridge.run(&shutdown);
    drop(bridge);
    if !crate::worker::wait_for_stopped_workers(std::time::Duration::from_secs(3)) {
        tracing::warn!("a stopped worker was still not reaped after 3 s; exiting anyway");
    }
    ran?;
    tracing::info!("detector stopped");
    Ok(())
}

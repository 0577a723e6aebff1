//! Command line of `orion-capture`: arguments, their validation, and the process body.
//! `orion-bench` runs the same body in its capture child processes.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::StreamSettings;
use crate::sandbox::{self, Policy};
use crate::sink::FrameSink;
use crate::source::{RtspTransport, Source};
use crate::status::Reporter;
use crate::stream::Capture;
use anyhow::{Context, Result, bail};
use clap::Parser;
use gstreamer as gst;
use orion_process::ring_arg::RingArg;
use orion_protocol::limits::StallTimeout;
use orion_protocol::{CaptureStatus, FrameSize, RateHz, StreamState};
use orion_ring::{FrameGeometry, PixelFormat, StandbyWriter};

/// Writes one camera's frames, as RGB at a fixed size and rate, into an Orion frame ring.
///
/// The ring must exist (oriond creates it). Status goes to stdout as JSON lines, logs to
/// stderr. Exits 0 on SIGTERM/SIGINT, 2 on bad arguments, 1 if the ring cannot be used.
#[derive(Parser, Debug, Clone)]
#[command(name = "orion-capture", version)]
pub struct Args {
    /// Frame ring to write by name, e.g. /orion-room1-frames
    #[arg(long)]
    ring: Option<String>,
    /// Frame ring to write as an inherited descriptor (how oriond runs the capture)
    #[arg(long)]
    ring_fd: Option<i32>,
    /// Camera: rtsp://[user:pass@]host[:port]/path, file:///path (loops), v4l2:///dev/videoN,
    /// test://. oriond passes it in the environment (readable only by the process's user),
    /// not on the command line, which every local user can read in /proc.
    #[arg(long, env = "ORION_CAMERA_SOURCE", hide_env_values = true)]
    source: String,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 480)]
    height: u32,
    /// Frames per second written to the ring, 0.1..=30 (fractions such as 0.5 are exact)
    #[arg(long, default_value_t = 5.0)]
    rate_hz: f64,
    /// Seconds without a frame before the stream is rebuilt, 0.5..=300 (at least 2.5 frame
    /// intervals)
    #[arg(long, default_value_t = 5.0)]
    stall_timeout_s: f64,
    #[arg(long, value_enum, default_value_t = RtspTransport::Tcp)]
    rtsp_transport: RtspTransport,
    /// PEM CA certificates an rtsps:// camera's certificate must chain to (a self-signed
    /// camera: its own certificate); default: the system's CAs
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<std::path::PathBuf>,
    /// Milliseconds between periodic status lines
    #[arg(long, default_value_t = 1000)]
    status_interval_ms: u64,
    /// Run without the Landlock/seccomp sandbox (debugging only; oriond never passes it)
    #[arg(long)]
    no_sandbox: bool,
    /// Start as a successor (make-before-break): decode and hold the newest frame, write
    /// nothing until oriond sends `{"type":"take_over"}` (the writer before is gone)
    #[arg(long)]
    standby: bool,
}

/// Arguments after validation.
struct Config {
    ring: RingArg,
    source: Source,
    settings: StreamSettings,
    stall_timeout: Duration,
    status_interval: Duration,
    sandbox: bool,
    standby: bool,
}

fn validate(args: &Args) -> Result<Config> {
    let stall = StallTimeout::new(args.stall_timeout_s)
        .map_err(|e| anyhow::anyhow!("stall_timeout_s {e}"))?
        .get();
    if !(100..=60_000).contains(&args.status_interval_ms) {
        bail!(
            "status_interval_ms must be in 100..=60000, got {}",
            args.status_interval_ms
        );
    }
    Ok(Config {
        ring: RingArg::new(args.ring.as_deref(), args.ring_fd)?,
        source: match &args.tls_ca {
            Some(ca) => {
                Source::parse(&args.source, args.rtsp_transport)?.with_tls_ca(ca.clone())?
            }
            None => Source::parse(&args.source, args.rtsp_transport)?,
        },
        settings: StreamSettings {
            size: FrameSize::new(args.width, args.height)?,
            rate: RateHz::new(args.rate_hz)?,
        },
        stall_timeout: Duration::from_secs_f64(stall),
        status_interval: Duration::from_millis(args.status_interval_ms),
        sandbox: !args.no_sandbox,
        standby: args.standby,
    })
}

/// Installs logging, parses the process arguments, runs.
pub fn main() -> ExitCode {
    init_logging();
    run_with(&Args::parse())
}

/// Structured logs on stderr (see `orion_process::init_logging`).
pub fn init_logging() {
    orion_process::init_logging();
}

/// Validates `args` and runs until SIGTERM/SIGINT; returns the process exit code.
pub fn run_with(args: &Args) -> ExitCode {
    orion_process::run_main("orion-capture", validate(args), run)
}

fn run(config: Config) -> Result<()> {
    let shutdown = orion_process::child_setup()?;
    orion_process::channel::open(orion_protocol::ProcessName::Capture)?;
    let size = config.settings.size;
    let frame = FrameGeometry::packed(size.width(), size.height(), PixelFormat::Rgb8)?;
    let ring = config.ring.source("frame ring")?;
    // Mapped now, before the sandbox; a successor claims it only when told to.
    let standby = StandbyWriter::map(ring.clone()).with_context(|| format!("map ring {ring}"))?;
    let capacity = standby.geometry().slot_capacity();
    if frame.full_len() > capacity {
        bail!(
            "ring {} has {capacity}-byte slots, too small for {size} RGB frames ({} bytes)",
            ring,
            frame.full_len()
        );
    }
    let sink = Arc::new(if config.standby {
        tracing::info!("standby: holding frames until oriond says take over");
        FrameSink::standby(standby)
    } else {
        FrameSink::new(
            standby
                .claim()
                .with_context(|| format!("attach to ring {ring}"))?,
        )
    });
    gst::init().context("initialize GStreamer")?;
    // Everything it needs from the file system is open now: lock the process in before
    // the first thread starts (the sandbox binds the threads created after it).
    let sandbox = if config.sandbox {
        let enforced = sandbox::apply(&Policy::for_source(&config.source))
            .context("sandbox the capture process")?;
        tracing::info!(%enforced, "sandboxed");
        enforced.to_string()
    } else {
        tracing::warn!("running without the sandbox (--no-sandbox)");
        "off (--no-sandbox)".to_string()
    };
    // Capture takes no commands (a new rate is a restart with new arguments); answer any.
    // oriond's one message to it: take the ring over (a successor in standby).
    let taker = sink.clone();
    orion_process::channel::spawn_reader(shutdown.clone(), move |incoming| {
        let cmd = match incoming {
            orion_process::channel::Incoming::Message(text) => {
                if orion_protocol::message::is_take_over(&text) {
                    return take_over(&taker);
                }
                orion_protocol::command::parse(&text)
            }
            orion_process::channel::Incoming::Rejected(why) => {
                orion_protocol::Command::rejected(why)
            }
        };
        orion_process::channel::send(&orion_protocol::Message::Ack(
            orion_protocol::Ack::for_command(
                &cmd,
                Err(orion_protocol::AckError::new(
                    orion_protocol::ErrorKind::Refused,
                    "capture takes no commands; change its settings through oriond",
                )),
            ),
        ));
    })?;
    let status = CaptureStatus {
        state: StreamState::Connecting,
        fps: 0.0,
        frames: 0,
        reconnects: 0,
        last_error: None,
        retry_in_ms: None,
        source: config.source.to_string(),
        width: size.width(),
        height: size.height(),
        rate_hz: config.settings.rate.hz(),
        last_seq: 0,
        epoch: sink.epoch(),
        sandbox: Some(sandbox),
    };
    tracing::info!(source = %config.source, %size, rate = %config.settings.rate, %ring, "capture starting");
    let mut capture = Capture {
        source: config.source,
        settings: config.settings,
        stall_timeout: config.stall_timeout,
        sink,
        reporter: Reporter::new(status, config.status_interval, !config.standby),
        shutdown,
    };
    capture.run();
    tracing::info!(frames = capture.sink.frames(), "capture stopped");
    Ok(())
}

/// The writer before is gone: claim the ring. A successor that cannot is of no use: it
/// exits, and oriond restarts the capture the ordinary way.
fn take_over(sink: &FrameSink) {
    match sink.take_over() {
        Ok(took) => {
            tracing::info!(
                epoch = took.epoch,
                held_frame_written = took.held_written,
                "took the ring over"
            );
            // The one signal oriond waits for: this process is the capture now.
            orion_process::channel::send(&orion_protocol::Message::Ready);
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot take the ring over; exiting"
            );
            std::process::exit(1);
        }
    }
}

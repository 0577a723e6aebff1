//! The whole system as an operator runs it, for end-to-end tests, the soak and the
//! `system` benchmarks: an RTSP server looping the sample street footage (the camera), a
//! broker (Debian's mosquitto as shipped, one with `set_tcp_nodelay true`, or Orion's own
//! embedded one), oriond with its real children on the real YOLOv3-tiny model, each in its
//! own temporary directory with its own instance id. Everything is stopped and removed when
//! the value is dropped, also when a test fails.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::child::ChildGuard;
use crate::mqtt::{Mosquitto, free_port};
use crate::operator::Operator;
use crate::oriond::{Oriond, START_TIMEOUT};
use crate::{bins, fixtures};

/// Which broker the system talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// mosquitto as Debian ships it (Nagle on).
    Stock,
    /// mosquitto with `set_tcp_nodelay true` (packaging/mosquitto/orion.conf).
    NoDelay,
    /// Orion's embedded broker (`mqtt.embedded = true`).
    Embedded,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub broker: Broker,
    pub rate_hz: f64,
    /// Model size at start (`n` is YOLOv3-tiny at 640 and 320; `m` the fall model, 640).
    pub size: char,
    /// Extra config lines, appended (keys of a table present go in with their table).
    pub extra: String,
    /// Extra lines in the `[detector]` table.
    pub detector: String,
    /// Model directory (default: fixtures/models/real).
    pub models: Option<PathBuf>,
    /// Instance id (default: a unique one per system).
    pub instance: Option<String>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            broker: Broker::Stock,
            rate_hz: 5.0,
            size: 'n',
            extra: String::new(),
            detector: String::new(),
            models: None,
            instance: None,
        }
    }
}

/// The camera: `rtsp-test-server` looping the footage on a fixed port, restartable.
pub struct Camera {
    pub port: u16,
    pub url: String,
    guard: Option<ChildGuard>,
    /// One encoder for every client (`--shared`).
    shared: bool,
}

impl Camera {
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// One stream encoded once for every client: many rooms on one box measure the
    /// rooms, not N encoders (a real camera encodes on its own hardware).
    pub fn start_shared() -> Result<Self> {
        Self::start_with(true)
    }

    fn start_with(shared: bool) -> Result<Self> {
        let mut c = Self {
            port: free_port()?,
            url: String::new(),
            guard: None,
            shared,
        };
        c.url = format!("rtsp://127.0.0.1:{}/cam", c.port);
        c.resume()?;
        Ok(c)
    }

    /// (Re)starts the server on the same port and waits until it listens.
    pub fn resume(&mut self) -> Result<()> {
        self.serve(Some(fixtures::fixture("footage/sample.mp4")?))
    }

    /// (Re)starts the server serving a moving test pattern instead: a scene with nobody
    /// in it.
    pub fn resume_empty_scene(&mut self) -> Result<()> {
        self.serve(None)
    }

    fn serve(&mut self, file: Option<PathBuf>) -> Result<()> {
        let mut cmd = Command::new(bins::locate("rtsp-test-server")?);
        cmd.args(["--port", &self.port.to_string(), "--mount", "/cam"]);
        if self.shared {
            cmd.arg("--shared");
        }
        match file {
            Some(file) => cmd.arg("--file").arg(file),
            None => cmd.args(["--width", "640", "--height", "360", "--fps", "10"]),
        };
        let mut guard = ChildGuard::spawn(cmd)?;
        let line = guard.next_line()?;
        if !line.contains("ready") {
            bail!("rtsp-test-server: {line}");
        }
        self.guard = Some(guard);
        Ok(())
    }

    /// SIGKILLs the server: the camera is gone until [`Camera::resume`].
    pub fn kill(&mut self) -> Result<()> {
        self.guard.take().context("camera not running")?.kill()
    }

    pub fn is_up(&self) -> bool {
        self.guard.is_some()
    }
}

pub struct System {
    pub camera: Camera,
    pub broker: Option<Mosquitto>,
    pub mqtt_port: u16,
    pub o: Oriond,
    pub spec: Spec,
}

impl System {
    /// Starts camera, broker and oriond, and waits until every process is RUNNING.
    pub fn start(spec: Spec) -> Result<Self> {
        let camera = Camera::start()?;
        let (broker, mqtt_port) = match spec.broker {
            Broker::Stock => {
                let b = Mosquitto::start_with(false)?;
                let p = b.port;
                (Some(b), p)
            }
            Broker::NoDelay => {
                let b = Mosquitto::start_with(true)?;
                let p = b.port;
                (Some(b), p)
            }
            Broker::Embedded => (None, free_port()?),
        };
        let (scratch_instance, dir) = Oriond::scratch()?;
        let instance = spec.instance.clone().unwrap_or(scratch_instance);
        let text = config(&spec, &instance, &dir, &camera.url, mqtt_port)?;
        let o = Oriond::start_with(instance, dir, &text)?;
        o.wait_all_running(START_TIMEOUT)?;
        Ok(Self {
            camera,
            broker,
            mqtt_port,
            o,
            spec,
        })
    }

    /// A new operator client on this system's broker.
    pub fn operator(&self) -> Result<Operator> {
        Operator::connect(self.mqtt_port, "care", &self.o.instance)
    }
}

/// The config of a room of `spec` on `camera` and the broker at `port`.
pub fn config(
    spec: &Spec,
    instance: &str,
    dir: &std::path::Path,
    camera: &str,
    port: u16,
) -> Result<String> {
    let embedded = spec.broker == Broker::Embedded;
    Ok(format!(
        r#"instance_id = "{instance}"
room_id = "e2e"
[camera]
source = "{camera}"
[stream]
width = 640
height = 360
rate_hz = {rate}
[detector]
model_dir = "{models}"
size = "{size}"
# YOLOv3-tiny says "person"; the fall model's two classes are both people.
classes = ["person", "Normal", "Fall"]
intra_op_threads = 2
{detector}
{runtime}
[mqtt]
embedded = {embedded}
host = "127.0.0.1"
port = {port}
status_interval_s = 5
{extra}
"#,
        rate = spec.rate_hz,
        size = spec.size,
        models = match &spec.models {
            Some(dir) => dir.clone(),
            None => fixtures::fixture("models/real")?,
        }
        .display(),
        runtime = crate::oriond::runtime_sections(dir)?,
        extra = spec.extra,
        detector = spec.detector,
    ))
}

//! Orion's configuration file (docs/operations.md, packaging/orion.toml). One TOML file, every key defaulted
//! except the camera source; unknown keys and out-of-range values are errors that name the
//! key's path (`stream.rate_hz`) and the allowed range. `oriond --check-config` runs
//! [`Config::load`] and nothing else.
//!
//! The file is the operator's baseline; runtime changes (rate, model, ROIs, auto-focus,
//! pause) live in oriond's desired state and persist separately.

#![forbid(unsafe_code)]

pub mod models;
mod mqtt;
mod secrets;
pub mod trust;
mod validate;

use std::path::{Path, PathBuf};

use orion_protocol::focus::{Params, ParamsUpdate, Strategy};
use orion_protocol::{FrameSize, InstanceId, ModelSize, RateHz};
use serde::{Deserialize, Serialize};

pub use mqtt::{BrokerAddr, Mqtt, Qos, Tls, default_allowed_commands};
pub use validate::ConfigError;

/// Largest config file read.
pub const MAX_FILE: u64 = 1 << 20;
/// Default location of the file.
pub const DEFAULT_PATH: &str = "/etc/orion/orion.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Names the ring, tensors, socket and every MQTT topic: `^[A-Za-z0-9_-]{1,64}$`.
    #[serde(default = "defaults::instance_id")]
    pub instance_id: InstanceId,
    #[serde(default)]
    pub room_id: String,
    pub camera: Camera,
    #[serde(default)]
    pub stream: Stream,
    #[serde(default)]
    pub detector: Detector,
    #[serde(default)]
    pub auto_focus: AutoFocus,
    #[serde(default)]
    pub occupancy: Occupancy,
    #[serde(default)]
    pub snapshot: Snapshot,
    #[serde(default)]
    pub mqtt: Mqtt,
    #[serde(default)]
    pub homeassistant: HomeAssistant,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub memory: Memory,
    #[serde(default)]
    pub supervisor: Supervisor,
    #[serde(default)]
    pub ring: Ring,
    /// Named places in the room (`[[zones]]`: `name`, `polygon` of 3..=32 `[x, y]` points
    /// normalized to the frame), each with its own occupancy; `set_zones` replaces them.
    #[serde(default)]
    pub zones: orion_protocol::Zones,
    #[serde(default)]
    pub events: Events,
}

/// Care events (`{prefix}/events/{id}`): the room and each zone always; these classes too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Events {
    /// At most 8 classes (each among `[detector] classes`) that make events of their own.
    pub classes: Vec<ClassEvent>,
}

/// A class that makes events (`Fall`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassEvent {
    pub class: String,
    /// Boxes of the class below this confidence do not count, 0..=1 (default 0.5).
    #[serde(default = "defaults::class_confidence")]
    pub min_confidence: f64,
    /// Frames in a row with the class before the event starts, 1..=100 (default 3).
    #[serde(default = "defaults::class_frames")]
    pub min_frames: u32,
    /// Seconds without it before the event ends, 0.5..=3600 (default 10).
    #[serde(default = "defaults::class_end_after")]
    pub end_after_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// `rtsp://…`, `rtsps://…`, `file:///…` (loops), `v4l2:///dev/videoN`, `test://ball`.
    pub source: String,
    /// RTSP lower transport: `tcp` or `udp`.
    #[serde(default = "defaults::rtsp_transport")]
    pub rtsp_transport: String,
    /// File holding `user:password` for an RTSP camera (never in `source` itself).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// PEM CA certificates an `rtsps://` camera's certificate must chain to (a camera with
    /// a self-signed certificate: that certificate); default: the system's CAs.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stream {
    pub width: u32,
    pub height: u32,
    pub rate_hz: RateHz,
    pub stall_timeout_s: f64,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            rate_hz: defaults::rate(),
            stall_timeout_s: 5.0,
        }
    }
}

impl Stream {
    /// Width and height as the validated type (checked by [`Config::load`]).
    pub fn size(&self) -> Option<FrameSize> {
        FrameSize::new(self.width, self.height).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Detector {
    pub model_dir: PathBuf,
    pub size: ModelSize,
    pub confidence: f64,
    pub iou: f64,
    pub classes: Vec<String>,
    pub threshold_320: u64,
    /// Interpreter with onnxruntime, numpy and msgpack.
    pub python: PathBuf,
    /// Directory holding the `orion_worker` package; empty: next to the binaries.
    pub worker_dir: Option<PathBuf>,
    pub intra_op_threads: u32,
    pub worker_timeout_s: f64,
    /// Keep a warm spare worker with the model loaded: a worker crash costs one inference
    /// instead of an interpreter start and a model load (and the spare's memory).
    pub spare_worker: bool,
    /// oriond keeps a standby detector with its worker loaded beside the running one: a
    /// detector crash costs one inference instead of a process, interpreter and model
    /// start (and the standby's memory; docs/adr/0008-standby-detector.md).
    pub standby: bool,
}

impl Default for Detector {
    fn default() -> Self {
        Self {
            model_dir: "/var/lib/orion/models".into(),
            size: ModelSize::N,
            confidence: 0.25,
            iou: 0.45,
            classes: vec!["person".into()],
            threshold_320: 102_400,
            python: "/usr/lib/orion/venv/bin/python3".into(),
            worker_dir: None,
            intra_op_threads: 2,
            worker_timeout_s: 10.0,
            spare_worker: true,
            standby: true,
        }
    }
}

/// Metrics for Prometheus (`supervisor/src/metrics.rs`): `orionctl metrics` always; with a
/// `textfile`, oriond also writes them there for node_exporter's textfile collector. No
/// listening socket either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// An absolute path ending in `.prom` in node_exporter's textfile directory (Debian:
    /// `/var/lib/prometheus/node-exporter/orion-{instance}.prom`), written atomically,
    /// mode 0644. None: not written.
    pub textfile: Option<PathBuf>,
    /// How often it is written, s (1..=3600).
    pub interval_s: u32,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            textfile: None,
            interval_s: 15,
        }
    }
}

/// When the box can afford the stand-ins (`supervisor/src/memory.rs`): the spare worker and
/// the standby detector run only while memory is not short, and are shed first when it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Memory {
    /// Stand-ins are shed when less than this is available, MB (the kernel's MemAvailable,
    /// or what this room's cgroup may still take under its MemoryHigh/MemoryMax if that is
    /// less), 64..=65536.
    pub stand_ins_min_available_mb: u32,
    /// ... or when tasks of this room (or the box) stall this much waiting for memory:
    /// PSI `some avg10`, percent, 1..=100.
    pub stand_ins_max_pressure_pct: f64,
    /// They come back once memory has been plentiful (a quarter above the minimum, the
    /// pressure below half its limit) this long, s (1..=3600).
    pub stand_ins_return_after_s: u32,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            stand_ins_min_available_mb: 400,
            stand_ins_max_pressure_pct: 10.0,
            stand_ins_return_after_s: 60,
        }
    }
}

/// Home Assistant MQTT discovery (control/src/discovery.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistant {
    /// Announce this instance and its entities to Home Assistant (off: remove them).
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    pub prefix: String,
}

impl Default for HomeAssistant {
    fn default() -> Self {
        Self {
            discovery: false,
            prefix: "homeassistant".into(),
        }
    }
}

/// How detections become room occupancy (retained `{prefix}/occupancy/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Occupancy {
    /// Frames in a row with a person before the room counts as occupied (and a new count
    /// as the count), 1..=100.
    pub enter_frames: u32,
    /// Seconds without a person before it counts as empty, 0.5..=3600.
    pub leave_after_s: f64,
    /// Persons below this confidence do not count, 0..=1.
    pub min_confidence: f64,
    /// While attention ROIs or auto-focus crop the frame, the detector looks at the whole
    /// frame at least this often (seconds, 0.5..=60); occupancy turns empty only after
    /// such a look found nobody.
    pub full_look_s: f64,
}

impl Default for Occupancy {
    fn default() -> Self {
        Self {
            enter_frames: 3,
            leave_after_s: 10.0,
            min_confidence: 0.5,
            full_look_s: 5.0,
        }
    }
}

/// Snapshots (`orionctl snapshot`, MQTT `get_snapshot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Snapshot {
    /// JPEG quality of snapshots sent over MQTT, 1..=100.
    pub jpeg_quality: u8,
    /// Publish a JPEG on `{prefix}/snapshot/{id}` whenever occupancy changes (a picture of
    /// the room leaves the device on every change: off unless asked for).
    pub on_occupancy_change: bool,
    /// Publish a JPEG on `{prefix}/snapshot/{id}` when a care event starts (off unless
    /// asked for, as above).
    pub on_event_start: bool,
    /// TrueType font of the caption and labels (Debian's fonts-dejavu-core); a snapshot
    /// without it has the drawing but no text.
    pub font: PathBuf,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            jpeg_quality: 80,
            on_occupancy_change: false,
            on_event_start: false,
            font: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into(),
        }
    }
}

/// Auto-focus at start; absent parameters keep the defaults of docs/architecture.md#regions-and-auto-focus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoFocus {
    pub enabled: bool,
    pub strategy: Option<Strategy>,
    pub alpha: Option<f64>,
    pub velocity_threshold: Option<f64>,
    pub velocity_factor: Option<f64>,
    pub max_expansion: Option<f64>,
    pub margin: Option<f64>,
    pub min_size: Option<f64>,
    pub lost_frames: Option<u32>,
}

impl AutoFocus {
    pub fn update(&self) -> ParamsUpdate {
        ParamsUpdate {
            strategy: self.strategy,
            alpha: self.alpha,
            velocity_threshold: self.velocity_threshold,
            velocity_factor: self.velocity_factor,
            max_expansion: self.max_expansion,
            margin: self.margin,
            min_size: self.min_size,
            lost_frames: self.lost_frames,
        }
    }

    /// The parameters (validated by [`Config::load`]).
    pub fn params(&self) -> Result<Params, String> {
        Params::default().with(&self.update())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Supervisor {
    pub socket_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Where the child binaries are; empty: next to oriond.
    pub bin_dir: Option<PathBuf>,
    /// A child that exits sooner than this after starting failed to start.
    pub startsecs: f64,
    /// Failed starts in a row before a child is FATAL.
    pub startretries: u32,
    /// SIGTERM, then this long, then SIGKILL.
    pub stopwaitsecs: f64,
    pub backoff_initial_s: f64,
    pub backoff_max_s: f64,
    /// Longest wait for a child's ready message (the detector loads its model first).
    pub ready_timeout_s: f64,
    /// Output kept per child for `orionctl tail`.
    pub log_buffer_kb: u32,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            socket_dir: "/run/orion".into(),
            state_dir: "/var/lib/orion".into(),
            bin_dir: None,
            startsecs: 1.0,
            startretries: 3,
            stopwaitsecs: 5.0,
            backoff_initial_s: 0.5,
            backoff_max_s: 30.0,
            ready_timeout_s: 60.0,
            log_buffer_kb: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ring {
    pub slots: u32,
}

impl Default for Ring {
    fn default() -> Self {
        Self { slots: 4 }
    }
}

mod defaults {
    use orion_protocol::{InstanceId, RateHz};

    pub fn instance_id() -> InstanceId {
        InstanceId::new("orion").unwrap_or_else(|_| unreachable!("a valid id"))
    }
    pub fn rtsp_transport() -> String {
        "tcp".into()
    }
    pub fn rate() -> RateHz {
        RateHz::new(5.0).unwrap_or_else(|_| unreachable!("5 Hz is in range"))
    }
    pub fn class_confidence() -> f64 {
        0.5
    }
    pub fn class_frames() -> u32 {
        3
    }
    pub fn class_end_after() -> f64 {
        10.0
    }
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|e| ConfigError::read(path, e))?;
        if meta.len() > MAX_FILE {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                max: MAX_FILE,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, e))?;
        let mut config = Self::parse(&text)?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("/"));
        config.resolve_paths(&base);
        validate::check_paths(&config)?;
        Ok(config)
    }

    /// Relative paths in the file are relative to the file's directory (so a config can sit
    /// next to its models); a bare interpreter name (`python3`) is looked up on PATH.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.detector.model_dir);
        if let Some(p) = self.camera.tls_ca.as_mut() {
            fix(p);
        }
        if let Some(p) = self.camera.credentials_file.as_mut() {
            fix(p);
        }
        if self.detector.python.components().count() > 1 {
            fix(&mut self.detector.python);
        }
        if let Some(p) = self.detector.worker_dir.as_mut() {
            fix(p);
        }
        fix(&mut self.supervisor.socket_dir);
        fix(&mut self.supervisor.state_dir);
        if let Some(p) = self.supervisor.bin_dir.as_mut() {
            fix(p);
        }
        if self.mqtt.broker_program.components().count() > 1 {
            fix(&mut self.mqtt.broker_program);
        }
        if let Some(p) = self.mqtt.password_file.as_mut() {
            fix(p);
        }
        if let Some(tls) = self.mqtt.tls.as_mut() {
            fix(&mut tls.ca);
            if let Some(p) = tls.cert.as_mut() {
                fix(p);
            }
            if let Some(p) = tls.key.as_mut() {
                fix(p);
            }
        }
    }

    /// Parses and validates the text of a config file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Key {
                path: if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                message: e.into_inner().message().trim().to_string(),
            }
        })?;
        validate::check(&config)?;
        Ok(config)
    }

    /// The frame ring's label (its memfd has no path).
    pub fn ring_label(&self) -> String {
        self.instance_id.ring_label()
    }

    /// oriond's socket: `{socket_dir}/oriond-{instance_id}.sock`.
    pub fn socket_path(&self) -> PathBuf {
        self.instance_id.socket_path(&self.supervisor.socket_dir)
    }

    /// The persisted runtime overrides: `{state_dir}/desired-{instance_id}.json`.
    pub fn state_path(&self) -> PathBuf {
        self.instance_id.state_path(&self.supervisor.state_dir)
    }

    /// The camera URI the capture opens: `camera.source` with the user and password of
    /// `camera.credentials_file` filled in. Holds a secret: for the capture's environment
    /// only, never for logs or status.
    pub fn camera_uri(&self) -> Result<String, ConfigError> {
        let Some(path) = &self.camera.credentials_file else {
            return Ok(self.camera.source.clone());
        };
        let text = secrets::read("camera.credentials_file", path)?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        let (user, password) = line.split_once(':').ok_or_else(|| ConfigError::Key {
            path: "camera.credentials_file".into(),
            message: format!("{} must hold one line user:password", path.display()),
        })?;
        secrets::with_credentials(&self.camera.source, user, password)
    }

    /// The MQTT password from `mqtt.password_file` (its first line), if one is configured.
    pub fn mqtt_password(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.mqtt.password_file else {
            return Ok(None);
        };
        let text = secrets::read("mqtt.password_file", path)?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }

    /// The MQTT client's private key (`mqtt.tls.key`, PEM), if one is configured; private
    /// like every secret file.
    pub fn mqtt_tls_key(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = self.mqtt.tls.as_ref().and_then(|t| t.key.as_ref()) else {
            return Ok(None);
        };
        secrets::read_key("mqtt.tls.key", path).map(Some)
    }

    /// Checks the files that hold secrets (`mqtt.password_file`, `mqtt.tls.key`,
    /// `camera.credentials_file`): present, regular, bounded, no access for other users.
    /// oriond runs it before starting (and `--check-config`).
    pub fn check_secrets(&self) -> Result<(), ConfigError> {
        self.mqtt_password()?;
        self.mqtt_tls_key()?;
        if self.camera.credentials_file.is_some() {
            self.camera_uri()?;
        }
        Ok(())
    }

    pub fn mqtt_client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| self.instance_id.mqtt_client_id())
    }
}

#[cfg(test)]
mod tests;

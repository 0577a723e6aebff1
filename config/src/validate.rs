//! Range checks after parsing; every error names the key's path and the allowed range.

use std::path::{Path, PathBuf};

use orion_protocol::FrameSize;
use orion_protocol::limits::{
    ClassNames, Confidence, FullLook, Iou, RangeError, StallTimeout, Threads, Threshold320,
    WorkerTimeout,
};

use crate::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    #[error("{path}: {message}")]
    Key { path: String, message: String },
}

impl ConfigError {
    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Self::Read {
            path: path.to_owned(),
            source,
        }
    }

    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Key { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn bad(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        path: path.into(),
        message: message.into(),
    }
}

/// A value checked by its protocol type (the same check every command line makes).
fn ranged<T>(path: &str, checked: Result<T, RangeError>) -> Result<T, ConfigError> {
    checked.map_err(|e| bad(path, e.to_string()))
}

fn float(path: &str, v: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(bad(path, format!("must be in {min}..={max}, got {v}")))
    }
}

fn int(path: &str, v: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(bad(path, format!("must be in {min}..={max}, got {v}")))
    }
}

fn name_like(path: &str, v: &str, max: usize, extra: &[u8]) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= max
        && v.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || extra.contains(&b)
        });
    if ok {
        Ok(())
    } else {
        let allowed = String::from_utf8_lossy(extra).into_owned();
        Err(bad(
            path,
            format!("must be 1..={max} characters of a-z, 0-9, -{allowed}, got {v:?}"),
        ))
    }
}

pub(crate) fn check(c: &Config) -> Result<(), ConfigError> {
    if c.room_id.len() > 128 || c.room_id.chars().any(char::is_control) {
        return Err(bad("room_id", "must be at most 128 printable characters"));
    }
    camera(c)?;
    if let Err(e) = FrameSize::new(c.stream.width, c.stream.height) {
        let key = if c.stream.width < FrameSize::MIN || c.stream.width > FrameSize::MAX_WIDTH {
            "stream.width"
        } else {
            "stream.height"
        };
        return Err(bad(key, e.to_string()));
    }
    ranged(
        "stream.stall_timeout_s",
        StallTimeout::new(c.stream.stall_timeout_s),
    )?;
    detector(c)?;
    c.auto_focus.params().map_err(|e| bad("auto_focus", e))?;
    let o = &c.occupancy;
    int("occupancy.enter_frames", o.enter_frames.into(), 1, 100)?;
    float("occupancy.leave_after_s", o.leave_after_s, 0.5, 3600.0)?;
    float("occupancy.min_confidence", o.min_confidence, 0.0, 1.0)?;
    ranged("occupancy.full_look_s", FullLook::new(o.full_look_s))?;
    events(c)?;
    int(
        "snapshot.jpeg_quality",
        c.snapshot.jpeg_quality.into(),
        1,
        100,
    )?;
    name_like("homeassistant.prefix", &c.homeassistant.prefix, 64, b"_/")?;
    metrics(c)?;
    memory(c)?;
    mqtt(c)?;
    supervisor(c)?;
    int("ring.slots", c.ring.slots.into(), 2, 64)?;
    Ok(())
}

fn camera(c: &Config) -> Result<(), ConfigError> {
    let source = &c.camera.source;
    const SCHEMES: [&str; 5] = ["rtsp://", "rtsps://", "file://", "v4l2://", "test://"];
    if source.len() > 2048 || !SCHEMES.iter().any(|s| source.starts_with(s)) {
        return Err(bad(
            "camera.source",
            "must start with rtsp://, rtsps://, file://, v4l2:// or test:// (at most 2048 characters)",
        ));
    }
    if !matches!(c.camera.rtsp_transport.as_str(), "tcp" | "udp") {
        return Err(bad("camera.rtsp_transport", "must be tcp or udp"));
    }
    let rtsp = source.starts_with("rtsp://") || source.starts_with("rtsps://");
    if rtsp && crate::secrets::has_password(source) {
        return Err(bad(
            "camera.source",
            "holds a password; put user:password into camera.credentials_file (mode 0640) and leave them out of the URI",
        ));
    }
    if c.camera.tls_ca.is_some() && !source.starts_with("rtsps://") {
        return Err(bad(
            "camera.tls_ca",
            "only an rtsps:// camera takes a CA certificate",
        ));
    }
    if c.camera.credentials_file.is_some() && !rtsp {
        return Err(bad(
            "camera.credentials_file",
            "only rtsp:// and rtsps:// cameras take credentials",
        ));
    }
    Ok(())
}

fn detector(c: &Config) -> Result<(), ConfigError> {
    let d = &c.detector;
    ranged("detector.confidence", Confidence::new(d.confidence))?;
    ranged("detector.iou", Iou::new(d.iou))?;
    ranged("detector.classes", ClassNames::new(d.classes.clone()))?;
    ranged("detector.threshold_320", Threshold320::new(d.threshold_320))?;
    ranged(
        "detector.intra_op_threads",
        Threads::new(d.intra_op_threads),
    )?;
    ranged(
        "detector.worker_timeout_s",
        WorkerTimeout::new(d.worker_timeout_s),
    )?;
    if d.model_dir.as_os_str().is_empty() {
        return Err(bad("detector.model_dir", "must not be empty"));
    }
    if d.python.as_os_str().is_empty() {
        return Err(bad("detector.python", "must not be empty"));
    }
    Ok(())
}

fn mqtt(c: &Config) -> Result<(), ConfigError> {
    let m = &c.mqtt;
    if m.host.is_empty() || m.host.len() > 253 || m.host.contains(['/', ' ']) {
        return Err(bad("mqtt.host", "must be a host name or address"));
    }
    if m.port == 0 {
        return Err(bad("mqtt.port", "must be in 1..=65535, got 0"));
    }
    if m.embedded && !matches!(m.host.as_str(), "localhost" | "127.0.0.1" | "::1") {
        return Err(bad(
            "mqtt.embedded",
            "the embedded broker listens on localhost only; set mqtt.host = \"127.0.0.1\"",
        ));
    }
    if m.embedded && m.tls.is_some() {
        return Err(bad("mqtt.tls", "not supported with the embedded broker"));
    }
    if m.embedded && (m.username.is_some() || m.password_file.is_some()) {
        return Err(bad(
            "mqtt.username",
            "the embedded broker takes local clients without credentials; leave username and password_file out",
        ));
    }
    if !matches!(m.version.as_str(), "5" | "3.1.1") {
        return Err(bad(
            "mqtt.version",
            format!("must be \"5\" or \"3.1.1\", got {:?}", m.version),
        ));
    }
    if let Some(id) = &m.client_id
        && (id.is_empty() || id.len() > 64 || !id.is_ascii())
    {
        return Err(bad("mqtt.client_id", "must be 1..=64 ASCII characters"));
    }
    if m.password_file.is_some() && m.username.is_none() {
        return Err(bad("mqtt.password_file", "needs mqtt.username"));
    }
    if let Some(tls) = &m.tls
        && tls.cert.is_some() != tls.key.is_some()
    {
        return Err(bad("mqtt.tls", "cert and key go together"));
    }
    if m.enabled
        && m.username.is_some()
        && m.tls.is_none()
        && !m.broker_is_local()
        && !m.allow_insecure
    {
        return Err(bad(
            "mqtt.tls",
            format!(
                "credentials for {} would cross the network in clear text; add [mqtt.tls] \
                 (or mqtt.allow_insecure = true for a lab)",
                m.brokers()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    commands("mqtt.allowed_commands", &m.allowed_commands)?;
    commands("mqtt.group_allowed_commands", &m.group_allowed_commands)?;
    if m.embedded && !m.hosts.is_empty() {
        return Err(bad(
            "mqtt.hosts",
            "the embedded broker is one node on mqtt.host:mqtt.port; hosts is for a clustered broker",
        ));
    }
    if m.hosts.len() > MAX_BROKERS {
        return Err(bad(
            "mqtt.hosts",
            format!("at most {MAX_BROKERS} broker nodes, got {}", m.hosts.len()),
        ));
    }
    for (i, h) in m.hosts.iter().enumerate() {
        if m.hosts[..i].contains(h) {
            return Err(bad("mqtt.hosts", format!("lists {h} twice")));
        }
    }
    if m.groups.len() > MAX_GROUPS {
        return Err(bad(
            "mqtt.groups",
            format!("at most {MAX_GROUPS} groups, got {}", m.groups.len()),
        ));
    }
    for (i, g) in m.groups.iter().enumerate() {
        if m.groups[..i].contains(g) {
            return Err(bad("mqtt.groups", format!("lists {g} twice")));
        }
    }
    name_like("mqtt.prefix", &m.prefix, 64, b"_/")?;
    if m.prefix.starts_with('/') || m.prefix.ends_with('/') || m.prefix.contains("//") {
        return Err(bad(
            "mqtt.prefix",
            "must not start or end with / or hold empty levels",
        ));
    }
    int("mqtt.keepalive_s", m.keepalive_s, 5, 3600)?;
    int("mqtt.status_interval_s", m.status_interval_s, 1, 3600)?;
    int(
        "mqtt.command_max_age_s",
        m.command_max_age_s.into(),
        1,
        86_400,
    )?;
    int(
        "mqtt.max_inflight_commands",
        m.max_inflight_commands.into(),
        1,
        1024,
    )?;
    for (key, q) in [
        ("mqtt.qos.detections", m.qos.detections),
        ("mqtt.qos.status", m.qos.status),
        ("mqtt.qos.acks", m.qos.acks),
        ("mqtt.qos.availability", m.qos.availability),
        ("mqtt.qos.commands", m.qos.commands),
        ("mqtt.qos.events", m.qos.events),
    ] {
        int(key, q.into(), 0, 2)?;
    }
    Ok(())
}

/// Broker nodes and groups a room may name: a bound on subscriptions and connect attempts.
const MAX_BROKERS: usize = 16;
const MAX_GROUPS: usize = 16;

/// A list of MQTT command names: each one of the catalog, none twice.
fn commands(key: &str, list: &[String]) -> Result<(), ConfigError> {
    use orion_protocol::command::MQTT_COMMANDS;
    if list.len() > MQTT_COMMANDS.len() {
        return Err(bad(key, "lists a command twice"));
    }
    for (i, c) in list.iter().enumerate() {
        if !MQTT_COMMANDS.contains(&c.as_str()) {
            let shown: String = c.chars().take(64).collect();
            return Err(bad(
                key,
                format!(
                    "{shown:?} is not an MQTT command (one of {})",
                    MQTT_COMMANDS.join(", ")
                ),
            ));
        }
        if list[..i].contains(c) {
            return Err(bad(key, format!("lists {c} twice")));
        }
    }
    Ok(())
}

fn supervisor(c: &Config) -> Result<(), ConfigError> {
    let s = &c.supervisor;
    float("supervisor.startsecs", s.startsecs, 0.0, 60.0)?;
    int("supervisor.startretries", s.startretries.into(), 0, 100)?;
    float("supervisor.stopwaitsecs", s.stopwaitsecs, 0.1, 300.0)?;
    float(
        "supervisor.backoff_initial_s",
        s.backoff_initial_s,
        0.05,
        600.0,
    )?;
    float(
        "supervisor.backoff_max_s",
        s.backoff_max_s,
        s.backoff_initial_s,
        3600.0,
    )?;
    float("supervisor.ready_timeout_s", s.ready_timeout_s, 1.0, 600.0)?;
    int("supervisor.log_buffer_kb", s.log_buffer_kb.into(), 4, 4096)?;
    Ok(())
}

/// Checks that need the paths resolved against the file's directory.
pub(crate) fn check_paths(c: &Config) -> Result<(), ConfigError> {
    // sun_path holds 108 bytes.
    if c.socket_path().as_os_str().len() > 100 {
        return Err(bad(
            "supervisor.socket_dir",
            format!(
                "{} is too long for a Unix socket path",
                c.supervisor.socket_dir.display()
            ),
        ));
    }
    Ok(())
}

fn memory(c: &Config) -> Result<(), ConfigError> {
    let m = &c.memory;
    int(
        "memory.stand_ins_min_available_mb",
        m.stand_ins_min_available_mb.into(),
        64,
        65536,
    )?;
    float(
        "memory.stand_ins_max_pressure_pct",
        m.stand_ins_max_pressure_pct,
        1.0,
        100.0,
    )?;
    int(
        "memory.stand_ins_return_after_s",
        m.stand_ins_return_after_s.into(),
        1,
        3600,
    )
}

fn metrics(c: &Config) -> Result<(), ConfigError> {
    int("metrics.interval_s", c.metrics.interval_s.into(), 1, 3600)?;
    if let Some(path) = &c.metrics.textfile {
        let named = path.extension().is_some_and(|e| e == "prom");
        if !path.is_absolute() || !named || path.as_os_str().len() > 4096 {
            return Err(bad(
                "metrics.textfile",
                format!(
                    "{} must be an absolute path ending in .prom (node_exporter reads only those)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

fn events(c: &Config) -> Result<(), ConfigError> {
    let classes = &c.events.classes;
    if classes.len() > 8 {
        return Err(bad(
            "events.classes",
            format!("at most 8 classes, got {}", classes.len()),
        ));
    }
    for (i, e) in classes.iter().enumerate() {
        if !c.detector.classes.contains(&e.class) {
            return Err(bad(
                &format!("events.classes[{i}].class"),
                format!(
                    "{:?} is not among [detector] classes ({}): the detector would never report it",
                    e.class.chars().take(64).collect::<String>(),
                    c.detector.classes.join(", ")
                ),
            ));
        }
        float(
            &format!("events.classes[{i}].min_confidence"),
            e.min_confidence,
            0.0,
            1.0,
        )?;
        int(
            &format!("events.classes[{i}].min_frames"),
            e.min_frames.into(),
            1,
            100,
        )?;
        float(
            &format!("events.classes[{i}].end_after_s"),
            e.end_after_s,
            0.5,
            3600.0,
        )?;
    }
    Ok(())
}

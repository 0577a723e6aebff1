//! The command catalog (docs/architecture.md#the-command-path) and its acknowledgements — one shape on MQTT,
//! on oriond's socket and between oriond and its children:
//!
//! - request: `{"command": "...", "params": {...}, "request_id": "optional string"}`;
//! - ack: `{"type": "ack", "command": "...", "status": "success"|"error", "request_id": ...,
//!   "data": ..., "error": ...}` (MQTT adds `command_ack` and a timestamp).
//!
//! [`parse`] validates a request completely, so nothing changes for a bad one, and names
//! the bad field with its allowed range.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use crate::ack::{Ack, AckError, AckStatus, ErrorKind};
use crate::focus::ParamsUpdate;
use crate::limits::JpegQuality;
use crate::snapshot::{ImageFormat, SnapshotRequest};
use crate::units::{ModelSize, RateHz, RoiSet};
use crate::zone::Zones;

/// Longest command accepted anywhere (MQTT payload, socket message body).
pub const MAX_COMMAND: usize = 64 * 1024;

/// How far ahead of the device's clock a command's timestamp may be (clocks drift). A
/// later one is refused: it would stay young past `mqtt.command_max_age_s`, after oriond
/// forgot it was applied. oriond remembers answered commands this much longer than the
/// age limit.
pub const MAX_CLOCK_AHEAD: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest request id echoed back.
pub const MAX_REQUEST_ID: usize = 128;

/// Prefix of the request ids orion-control forwards for MQTT commands that carry one:
/// oriond answers a repeated id again instead of applying the command twice.
pub const MQTT_ID_PREFIX: &str = "mqtt:";

/// Every command MQTT can carry; the supervisor verbs (`Action::is_local_only`) are for
/// orionctl on oriond's socket only.
pub const MQTT_COMMANDS: [&str; 19] = [
    "get_status",
    "get_snapshot",
    "pause_inference",
    "resume_inference",
    "set_inference_rate",
    "set_model_size",
    "set_attention_rois",
    "clear_attention_rois",
    "get_attention_rois",
    "set_auto_focus_strategy",
    "get_auto_focus_strategy",
    "enable_auto_focus",
    "disable_auto_focus",
    "clear_auto_focus_history",
    "get_auto_focus_stats",
    "set_zones",
    "get_zones",
    "restart_process",
    "shutdown",
];

/// The MQTT commands that can take a room dark or churn its processes, or send a picture
/// of the room off the device: refused over MQTT unless `[mqtt] allowed_commands` lists
/// them.
pub const MQTT_GUARDED: [&str; 3] = ["restart_process", "shutdown", "get_snapshot"];

/// What a group command (`{prefix}/control/group/{group}`) may be unless `[mqtt]
/// group_allowed_commands` says otherwise: reading and the reversible room-wide settings.
/// Geometry (regions, zones) belongs to one camera, and a floor-wide snapshot, restart or
/// shutdown is one published message too easy to send.
pub const MQTT_GROUP_DEFAULT: [&str; 5] = [
    "get_status",
    "pause_inference",
    "resume_inference",
    "set_inference_rate",
    "set_model_size",
];

/// A process oriond supervises. (Declaration order is start order.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessName {
    /// The embedded MQTT broker (a mosquitto child, only with `mqtt.embedded`; ADR 0006).
    Broker,
    Control,
    Detector,
    Capture,
}

impl ProcessName {
    /// Start order; stop order is the reverse.
    pub const START_ORDER: [ProcessName; 4] = [
        ProcessName::Broker,
        ProcessName::Control,
        ProcessName::Detector,
        ProcessName::Capture,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProcessName::Broker => "broker",
            ProcessName::Control => "control",
            ProcessName::Detector => "detector",
            ProcessName::Capture => "capture",
        }
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProcessName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::START_ORDER
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "no such process {:?} (broker, control, detector, capture)",
                    s.chars().take(32).collect::<String>()
                )
            })
    }
}

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    GetStatus,
    /// The newest frame with the last boxes drawn, encoded.
    GetSnapshot(SnapshotRequest),
    Pause,
    Resume,
    SetRate(RateHz),
    SetModelSize(ModelSize),
    SetRois(RoiSet),
    ClearRois,
    GetRois,
    SetAutoFocus(ParamsUpdate),
    GetAutoFocus,
    EnableAutoFocus,
    DisableAutoFocus,
    ClearAutoFocusHistory,
    GetAutoFocusStats,
    /// Replace the room's zones (an empty list removes them all).
    SetZones(Zones),
    GetZones,
    RestartProcess(ProcessName),
    Shutdown,
    // Supervisor verbs: orionctl on the socket only, never MQTT.
    /// One process's status, or all of it.
    ProcessStatus(Option<ProcessName>),
    /// Start (clears FATAL); answered when RUNNING.
    StartProcess(ProcessName),
    /// Stop; answered when STOPPED.
    StopProcess(ProcessName),
    /// A process's recent output from byte `offset` (or the last `bytes`).
    TailProcess {
        name: ProcessName,
        offset: Option<u64>,
        bytes: usize,
    },
    /// Re-read the config file (as SIGHUP).
    ReloadConfig,
}

/// Most output `tail_process` returns at once.
pub const TAIL_MAX: usize = 64 * 1024;

/// The `tail_process` ack's data: the output from the offset asked for, and the offset to
/// ask for next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailReport {
    pub text: String,
    pub offset: u64,
}

impl Action {
    /// Supervisor verbs, for orionctl on oriond's socket; MQTT refuses them.
    pub fn is_local_only(&self) -> bool {
        matches!(
            self,
            Action::ProcessStatus(_)
                | Action::StartProcess(_)
                | Action::StopProcess(_)
                | Action::TailProcess { .. }
                | Action::ReloadConfig
        )
    }

    /// Questions: they change nothing.
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            Action::GetStatus
                | Action::GetSnapshot(_)
                | Action::GetRois
                | Action::GetAutoFocus
                | Action::GetAutoFocusStats
                | Action::GetZones
                | Action::ProcessStatus(_)
                | Action::TailProcess { .. }
        )
    }

    /// The command name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Action::GetStatus => "get_status",
            Action::GetSnapshot(_) => "get_snapshot",
            Action::Pause => "pause_inference",
            Action::Resume => "resume_inference",
            Action::SetRate(_) => "set_inference_rate",
            Action::SetModelSize(_) => "set_model_size",
            Action::SetRois(_) => "set_attention_rois",
            Action::ClearRois => "clear_attention_rois",
            Action::GetRois => "get_attention_rois",
            Action::SetAutoFocus(_) => "set_auto_focus_strategy",
            Action::GetAutoFocus => "get_auto_focus_strategy",
            Action::EnableAutoFocus => "enable_auto_focus",
            Action::DisableAutoFocus => "disable_auto_focus",
            Action::ClearAutoFocusHistory => "clear_auto_focus_history",
            Action::GetAutoFocusStats => "get_auto_focus_stats",
            Action::SetZones(_) => "set_zones",
            Action::GetZones => "get_zones",
            Action::RestartProcess(_) => "restart_process",
            Action::Shutdown => "shutdown",
            Action::ProcessStatus(_) => "process_status",
            Action::StartProcess(_) => "start_process",
            Action::StopProcess(_) => "stop_process",
            Action::TailProcess { .. } => "tail_process",
            Action::ReloadConfig => "reload_config",
        }
    }

    /// The request for this action, as sent on the wire.
    pub fn to_request(&self, request_id: Option<&str>) -> Value {
        let params = match self {
            Action::SetRate(rate) => json!({"rate_hz": rate.hz()}),
            Action::SetModelSize(size) => json!({"size": size}),
            Action::GetSnapshot(r) => {
                json!({"format": r.format.as_str(), "quality": r.quality.map(|q| q.get())})
            }
            Action::SetRois(rois) => json!({"rois": rois}),
            Action::SetZones(zones) => json!({"zones": zones}),
            Action::SetAutoFocus(update) => serde_json::to_value(update).unwrap_or(Value::Null),
            Action::RestartProcess(name)
            | Action::StartProcess(name)
            | Action::StopProcess(name)
            | Action::ProcessStatus(Some(name)) => json!({"name": name}),
            Action::TailProcess {
                name,
                offset,
                bytes,
            } => json!({"name": name, "offset": offset, "bytes": bytes}),
            _ => json!({}),
        };
        json!({"command": self.name(), "params": params, "request_id": request_id})
    }
}

/// A request as received: its name and id (echoed in the ack even when it is rejected) and
/// the validated action or why it was rejected.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub request_id: Option<String>,
    /// When the sender sent it (RFC 3339), if it says: a command older than
    /// `mqtt.command_max_age_s` is refused as `expired`.
    pub timestamp: Option<String>,
    pub action: Result<Action, AckError>,
}

impl Command {
    /// A request rejected before it could be read (too long, not JSON, ...).
    pub fn rejected(why: impl Into<String>) -> Self {
        Self {
            name: "unknown".into(),
            request_id: None,
            timestamp: None,
            action: Err(AckError::bad_request(why)),
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    command: String,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    request_id: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
}

/// Parses and validates one request.
pub fn parse(text: &str) -> Command {
    if text.len() > MAX_COMMAND {
        return Command::rejected(format!("command longer than {MAX_COMMAND} bytes"));
    }
    match serde_json::from_str::<Raw>(text) {
        Ok(raw) => from_raw(raw),
        Err(e) => Command::rejected(format!("malformed command: {e}")),
    }
}

/// Parses and validates one request already decoded as JSON.
pub fn parse_value(value: Value) -> Command {
    match serde_json::from_value::<Raw>(value) {
        Ok(raw) => from_raw(raw),
        Err(e) => Command::rejected(format!("malformed command: {e}")),
    }
}

fn from_raw(raw: Raw) -> Command {
    let name: String = raw.command.chars().take(64).collect();
    let request_id = match raw.request_id {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_REQUEST_ID => Ok(Some(s)),
        Some(Value::String(_)) => Err(format!("request_id must be at most {MAX_REQUEST_ID} bytes")),
        Some(_) => Err("request_id must be a string".to_string()),
    };
    let timestamp = match raw.timestamp {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 64 => Ok(Some(s)),
        Some(_) => Err("timestamp must be an RFC 3339 string".to_string()),
    };
    let (request_id, timestamp, action) = match (request_id, timestamp) {
        (Ok(id), Ok(ts)) => (id, ts, action(&name, &raw.params)),
        (Ok(id), Err(e)) => (id, None, Err(AckError::bad_request(e))),
        (Err(e), _) => (None, None, Err(AckError::bad_request(e))),
    };
    Command {
        name,
        request_id,
        timestamp,
        action,
    }
}

fn action(name: &str, params: &Value) -> Result<Action, AckError> {
    if !(params.is_object() || params.is_null()) {
        return Err(AckError::bad_request("params must be an object"));
    }
    // Each error carries its kind from where it is made, never read back from its text.
    supervisor_verb(name, params)
        .or_else(|| catalog(name, params))
        .unwrap_or_else(|| {
            Err(AckError::new(
                ErrorKind::UnknownCommand,
                format!(
                    "unknown command {:?}",
                    name.chars().take(64).collect::<String>()
                ),
            ))
        })
}

/// A process name that names no process: `unknown_process`, not a bad request.
fn unknown_process(e: String) -> AckError {
    AckError::new(ErrorKind::UnknownProcess, format!("params.name: {e}"))
}

/// The supervisor verbs (orionctl), if `name` is one.
fn supervisor_verb(name: &str, params: &Value) -> Option<Result<Action, AckError>> {
    let process = |required: bool| -> Result<Option<ProcessName>, AckError> {
        match params.get("name") {
            Some(Value::String(s)) => s.parse().map(Some).map_err(unknown_process),
            None | Some(Value::Null) if !required => Ok(None),
            _ => Err(AckError::bad_request(
                "params.name must be one of broker, control, detector, capture",
            )),
        }
    };
    let required = |p: Result<Option<ProcessName>, AckError>| {
        p.and_then(|n| n.ok_or_else(|| AckError::bad_request("params.name is required")))
    };
    Some(match name {
        "process_status" => process(false).map(Action::ProcessStatus),
        "start_process" => required(process(true)).map(Action::StartProcess),
        "stop_process" => required(process(true)).map(Action::StopProcess),
        "tail_process" => required(process(true)).and_then(|name| {
            let offset =
                match params.get("offset") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        AckError::bad_request("params.offset must be a byte offset")
                    })?),
                };
            let bytes = match params.get("bytes") {
                None | Some(Value::Null) => 1600,
                Some(v) => v
                    .as_u64()
                    .filter(|b| (1..=TAIL_MAX as u64).contains(b))
                    .ok_or_else(|| {
                        AckError::bad_request(format!("params.bytes must be in 1..={TAIL_MAX}"))
                    })? as usize,
            };
            Ok(Action::TailProcess {
                name,
                offset,
                bytes,
            })
        }),
        "reload_config" => Ok(Action::ReloadConfig),
        _ => return None,
    })
}

/// The MQTT command catalog (docs/architecture.md#the-command-path), if `name` is in it.
fn catalog(name: &str, params: &Value) -> Option<Result<Action, AckError>> {
    let field = |key: &str| params.get(key);
    let no_params = |a: Action| -> Result<Action, String> { Ok(a) };
    if name == "restart_process" {
        return Some(match field("name") {
            Some(Value::String(s)) => s
                .parse()
                .map(Action::RestartProcess)
                .map_err(unknown_process),
            _ => Err(AckError::bad_request(
                "params.name must be one of broker, control, detector, capture",
            )),
        });
    }
    let parsed = match name {
        "get_status" => no_params(Action::GetStatus),
        "get_snapshot" => snapshot_request(params).map(Action::GetSnapshot),
        "pause_inference" => no_params(Action::Pause),
        "resume_inference" => no_params(Action::Resume),
        "set_inference_rate" => match field("rate_hz") {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| "params.rate_hz must be a number".to_string())
                .and_then(|hz| RateHz::new(hz).map_err(|e| format!("params.{e}")))
                .map(Action::SetRate),
            _ => Err(format!(
                "params.rate_hz must be a number in {}..={}",
                RateHz::MIN,
                RateHz::MAX
            )),
        },
        "set_model_size" => match field("size") {
            Some(Value::String(s)) => s
                .parse()
                .map(Action::SetModelSize)
                .map_err(|e| format!("params.{e}")),
            _ => Err("params.size must be one of n, s, m, l, x".into()),
        },
        "set_attention_rois" => match field("rois") {
            Some(rois) => serde_json::from_value::<RoiSet>(rois.clone())
                .map(Action::SetRois)
                .map_err(|e| format!("params.rois: {e}")),
            None => {
                Err("params.rois must be a list of 1..=16 {x, y, width, height} rectangles".into())
            }
        },
        "clear_attention_rois" => no_params(Action::ClearRois),
        "get_attention_rois" => no_params(Action::GetRois),
        "set_auto_focus_strategy" => match field("strategy") {
            Some(_) => serde_json::from_value::<ParamsUpdate>(params.clone())
                .map_err(|e| format!("params: {e}"))
                .and_then(|update| {
                    // Range check now, against the defaults; the owner re-checks against its
                    // current parameters.
                    crate::focus::Params::default()
                        .with(&update)
                        .map_err(|e| format!("params.{e}"))?;
                    Ok(Action::SetAutoFocus(update))
                }),
            None => Err("params.strategy must be one of simple, smoothing, velocity".into()),
        },
        "get_auto_focus_strategy" => no_params(Action::GetAutoFocus),
        "enable_auto_focus" => no_params(Action::EnableAutoFocus),
        "disable_auto_focus" => no_params(Action::DisableAutoFocus),
        "clear_auto_focus_history" => no_params(Action::ClearAutoFocusHistory),
        "get_auto_focus_stats" => no_params(Action::GetAutoFocusStats),
        "set_zones" => match field("zones") {
            Some(zones) => serde_json::from_value::<Zones>(zones.clone())
                .map(Action::SetZones)
                .map_err(|e| format!("params.zones: {e}")),
            None => Err(
                "params.zones must be a list of 0..=16 {name, polygon: [[x, y], ...]} zones".into(),
            ),
        },
        "get_zones" => no_params(Action::GetZones),
        "shutdown" => no_params(Action::Shutdown),
        _ => return None,
    };
    Some(parsed.map_err(AckError::bad_request))
}

/// `get_snapshot`'s params: `format` png or jpeg (default jpeg), `quality` 1..=100.
fn snapshot_request(params: &Value) -> Result<SnapshotRequest, String> {
    let format = match params.get("format") {
        None | Some(Value::Null) => ImageFormat::Jpeg,
        Some(Value::String(s)) => s.parse().map_err(|e| format!("params.{e}"))?,
        Some(_) => return Err("params.format must be png or jpeg".into()),
    };
    let quality = match params.get("quality") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|q| u8::try_from(q).ok())
                .and_then(|q| JpegQuality::new(q).ok())
                .ok_or_else(|| format!("params.quality must be in {}", JpegQuality::RANGE))?,
        ),
    };
    Ok(SnapshotRequest { format, quality })
}

impl Ack {
    /// The answer to `cmd` (its name and request id).
    pub fn for_command(cmd: &Command, result: Result<Value, AckError>) -> Self {
        Self::new(&cmd.name, cmd.request_id.clone(), result)
    }
}

#[cfg(test)]
mod tests;

//! The command catalog (DESIGN.md section 4) and its acknowledgements — one shape on MQTT,
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

use crate::focus::ParamsUpdate;
use crate::units::{ModelSize, RateHz, RoiSet};

/// Longest command accepted anywhere (MQTT payload, socket message body).
pub const MAX_COMMAND: usize = 64 * 1024;
/// Longest request id echoed back.
pub const MAX_REQUEST_ID: usize = 128;

/// Prefix of the request ids orion-control forwards for MQTT commands that carry one:
/// oriond answers a repeated id again instead of applying the command twice.
pub const MQTT_ID_PREFIX: &str = "mqtt:";

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
    RestartProcess(ProcessName),
    Shutdown,
}

impl Action {
    /// The command name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Action::GetStatus => "get_status",
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
            Action::RestartProcess(_) => "restart_process",
            Action::Shutdown => "shutdown",
        }
    }

    /// The request for this action, as sent on the wire.
    pub fn to_request(&self, request_id: Option<&str>) -> Value {
        let params = match self {
            Action::SetRate(rate) => json!({"rate_hz": rate.hz()}),
            Action::SetModelSize(size) => json!({"size": size}),
            Action::SetRois(rois) => json!({"rois": rois}),
            Action::SetAutoFocus(update) => serde_json::to_value(update).unwrap_or(Value::Null),
            Action::RestartProcess(name) => json!({"name": name}),
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
    pub action: Result<Action, String>,
}

impl Command {
    /// A request rejected before it could be read (too long, not JSON, ...).
    pub fn rejected(why: impl Into<String>) -> Self {
        Self {
            name: "unknown".into(),
            request_id: None,
            timestamp: None,
            action: Err(why.into()),
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
        (Ok(id), Err(e)) => (id, None, Err(e)),
        (Err(e), _) => (None, None, Err(e)),
    };
    Command {
        name,
        request_id,
        timestamp,
        action,
    }
}

fn action(name: &str, params: &Value) -> Result<Action, String> {
    if !(params.is_object() || params.is_null()) {
        return Err("params must be an object".into());
    }
    let field = |key: &str| params.get(key);
    let no_params = |a: Action| -> Result<Action, String> { Ok(a) };
    match name {
        "get_status" => no_params(Action::GetStatus),
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
        "restart_process" => match field("name") {
            Some(Value::String(s)) => s
                .parse()
                .map(Action::RestartProcess)
                .map_err(|e| format!("params.name: {e}")),
            _ => Err("params.name must be one of broker, control, detector, capture".into()),
        },
        "shutdown" => no_params(Action::Shutdown),
        other => Err(format!(
            "unknown command {:?}",
            other.chars().take(64).collect::<String>()
        )),
    }
}

/// Outcome of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Success,
    Error,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    #[serde(rename = "type")]
    pub kind: AckTag,
    pub command: String,
    pub status: AckStatus,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub error: Option<String>,
}

/// The `"type": "ack"` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckTag {
    Ack,
}

impl Ack {
    pub fn new(command: &str, request_id: Option<String>, result: Result<Value, String>) -> Self {
        let (status, data, error) = match result {
            Ok(data) => (AckStatus::Success, data, None),
            Err(e) => (AckStatus::Error, Value::Null, Some(e)),
        };
        Self {
            kind: AckTag::Ack,
            command: command.to_string(),
            status,
            request_id,
            data,
            error,
        }
    }

    pub fn for_command(cmd: &Command, result: Result<Value, String>) -> Self {
        Self::new(&cmd.name, cmd.request_id.clone(), result)
    }

    pub fn is_success(&self) -> bool {
        self.status == AckStatus::Success
    }

    /// The outcome as a result: data on success, the error message otherwise.
    pub fn into_result(self) -> Result<Value, String> {
        match self.status {
            AckStatus::Success => Ok(self.data),
            AckStatus::Error => Err(self.error.unwrap_or_else(|| "failed".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_validated_with_clear_errors() {
        assert_eq!(
            parse(r#"{"command":"pause_inference"}"#).action,
            Ok(Action::Pause)
        );
        let c = parse(r#"{"command":"set_model_size","params":{"size":"m"},"request_id":"r1"}"#);
        assert_eq!(
            (c.action, c.request_id.as_deref()),
            (Ok(Action::SetModelSize(ModelSize::M)), Some("r1"))
        );
        let bad = parse(r#"{"command":"set_model_size","params":{"size":"q"}}"#)
            .action
            .unwrap_err();
        assert!(
            bad.contains("params.size") && bad.contains("n, s, m, l, x"),
            "{bad}"
        );
        assert!(
            parse(r#"{"command":"set_model_size","params":{"size":3}}"#)
                .action
                .is_err()
        );
        assert!(
            parse("{nope")
                .action
                .unwrap_err()
                .starts_with("malformed command")
        );
        assert!(
            parse(r#"{"command":"dance"}"#)
                .action
                .unwrap_err()
                .contains("unknown command")
        );
        let roi = parse(
            r#"{"command":"set_attention_rois","params":{"rois":[{"x":0.5,"y":0,"width":0.6,"height":1}]}}"#,
        );
        assert!(roi.action.unwrap_err().contains("x + width <= 1"));
        let many = format!(
            r#"{{"command":"set_attention_rois","params":{{"rois":[{}]}}}}"#,
            vec![r#"{"x":0,"y":0,"width":1,"height":1}"#; 17].join(",")
        );
        assert!(parse(&many).action.unwrap_err().contains("1..=16"));
    }

    #[test]
    fn rates_names_and_ids_are_checked() {
        let rate = |v: &str| {
            parse(&format!(
                r#"{{"command":"set_inference_rate","params":{{"rate_hz":{v}}}}}"#
            ))
            .action
        };
        assert_eq!(rate("2.5"), Ok(Action::SetRate(RateHz::new(2.5).unwrap())));
        for bad in ["0", "-1", "31", "\"5\"", "null", "0.0001"] {
            let e = rate(bad).unwrap_err();
            assert!(
                e.contains("rate_hz") && e.contains("0.1..=30"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            parse(r#"{"command":"restart_process","params":{"name":"capture"}}"#).action,
            Ok(Action::RestartProcess(ProcessName::Capture))
        );
        assert!(
            parse(r#"{"command":"restart_process","params":{"name":"sh"}}"#)
                .action
                .unwrap_err()
                .contains("broker, control, detector, capture")
        );
        let id = parse(r#"{"command":"get_status","request_id":5}"#);
        assert!(
            id.action
                .unwrap_err()
                .contains("request_id must be a string")
        );
        assert!(
            parse(r#"{"command":"get_status","params":[1]}"#)
                .action
                .is_err()
        );
        let focus = parse(
            r#"{"command":"set_auto_focus_strategy","params":{"strategy":"velocity","alpha":2}}"#,
        );
        assert!(
            focus
                .action
                .unwrap_err()
                .contains("alpha must be in (0, 1]")
        );
        let long = format!(r#"{{"command":"{}"}}"#, "a".repeat(MAX_COMMAND));
        assert!(parse(&long).action.unwrap_err().contains("longer than"));
    }

    #[test]
    fn requests_round_trip_through_the_wire_shape() {
        let actions = [
            Action::SetRate(RateHz::new(0.5).unwrap()),
            Action::SetModelSize(ModelSize::L),
            Action::RestartProcess(ProcessName::Detector),
            Action::SetAutoFocus(ParamsUpdate {
                strategy: Some(crate::focus::Strategy::Simple),
                alpha: Some(0.5),
                ..Default::default()
            }),
            Action::Shutdown,
        ];
        for a in actions {
            let back = parse_value(a.to_request(Some("id")));
            assert_eq!(back.action, Ok(a));
            assert_eq!(back.request_id.as_deref(), Some("id"));
        }
        let ack = Ack::new("x", Some("r".into()), Err("bad".into()));
        let text = serde_json::to_string(&ack).unwrap();
        assert!(text.contains(r#""type":"ack""#) && text.contains(r#""status":"error""#));
        assert_eq!(serde_json::from_str::<Ack>(&text).unwrap(), ack);
    }
}

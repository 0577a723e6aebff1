//! Operator commands and their acknowledgements, as JSON lines on stdin/stdout — the
//! bridge's interface until the supervisor routes commands over its socket. Each command
//! gets exactly one ack: `{"type":"ack","command":…,"status":"success"|"error",
//! "request_id":…,"data":…,"error":…}`.

use std::io::{BufRead, Read};
use std::sync::mpsc::Sender;

use orion_protocol::{ModelSize, RoiSet};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::events::Event;

/// Longest command line accepted.
pub const MAX_COMMAND: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pause,
    Resume,
    SetModelSize(ModelSize),
    SetRois(RoiSet),
    ClearRois,
    GetRois,
    SetAutoFocus(crate::autofocus::ParamsUpdate),
    GetAutoFocus,
    EnableAutoFocus,
    DisableAutoFocus,
    ClearAutoFocusHistory,
    GetAutoFocusStats,
    GetStatus,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub request_id: Option<String>,
    /// The validated action, or why the command was rejected.
    pub action: Result<Action, String>,
}

#[derive(Deserialize)]
struct Raw {
    command: String,
    #[serde(default)]
    params: Value,
    request_id: Option<String>,
}

pub fn parse(line: &str) -> Command {
    let raw: Raw = match serde_json::from_str(line) {
        Ok(raw) => raw,
        Err(e) => {
            return Command {
                name: "unknown".into(),
                request_id: None,
                action: Err(format!("malformed command: {e}")),
            };
        }
    };
    let action = match raw.command.as_str() {
        "pause_inference" => Ok(Action::Pause),
        "resume_inference" => Ok(Action::Resume),
        "get_status" => Ok(Action::GetStatus),
        "set_model_size" => match raw.params.get("size") {
            Some(Value::String(s)) => s
                .parse()
                .map(Action::SetModelSize)
                .map_err(|e| format!("params.{e}")),
            _ => Err("params.size must be one of n, s, m, l, x".into()),
        },
        "set_attention_rois" => match raw.params.get("rois") {
            Some(rois) => serde_json::from_value::<RoiSet>(rois.clone())
                .map(Action::SetRois)
                .map_err(|e| format!("params.rois: {e}")),
            None => {
                Err("params.rois must be a list of 1..=16 {x, y, width, height} rectangles".into())
            }
        },
        "clear_attention_rois" => Ok(Action::ClearRois),
        "set_auto_focus_strategy" => match raw.params.get("strategy") {
            Some(_) => serde_json::from_value(raw.params.clone())
                .map(Action::SetAutoFocus)
                .map_err(|e| format!("params: {e}")),
            None => Err("params.strategy must be one of simple, smoothing, velocity".into()),
        },
        "get_auto_focus_strategy" => Ok(Action::GetAutoFocus),
        "enable_auto_focus" => Ok(Action::EnableAutoFocus),
        "disable_auto_focus" => Ok(Action::DisableAutoFocus),
        "clear_auto_focus_history" => Ok(Action::ClearAutoFocusHistory),
        "get_auto_focus_stats" => Ok(Action::GetAutoFocusStats),
        "get_attention_rois" => Ok(Action::GetRois),
        other => Err(format!(
            "unknown command {:?}",
            other.chars().take(64).collect::<String>()
        )),
    };
    Command {
        name: raw.command.chars().take(64).collect(),
        request_id: raw.request_id,
        action,
    }
}

pub fn ack(cmd: &Command, result: Result<Value, String>) -> Value {
    let (status, data, error) = match result {
        Ok(data) => ("success", data, Value::Null),
        Err(e) => ("error", Value::Null, Value::String(e)),
    };
    json!({"type": "ack", "command": cmd.name, "status": status, "request_id": cmd.request_id, "data": data, "error": error})
}

/// Reads command lines from stdin into the event channel.
pub fn spawn_reader(events: Sender<Event>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        loop {
            line.clear();
            match Read::by_ref(&mut stdin)
                .take(MAX_COMMAND as u64 + 1)
                .read_line(&mut line)
            {
                Ok(0) | Err(_) => {
                    let _ = events.send(Event::InputClosed);
                    return;
                }
                Ok(n) if n > MAX_COMMAND && !line.ends_with('\n') => {
                    // Skip the rest of the oversized line, then reject it.
                    let mut rest = Vec::new();
                    let _ = stdin.read_until(b'\n', &mut rest);
                    let cmd = Command {
                        name: "unknown".into(),
                        request_id: None,
                        action: Err(format!("command longer than {MAX_COMMAND} bytes")),
                    };
                    let _ = events.send(Event::Command(cmd));
                }
                Ok(_) if line.trim().is_empty() => {}
                Ok(_) => {
                    if events.send(Event::Command(parse(line.trim()))).is_err() {
                        return;
                    }
                }
            }
        }
    });
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
        let a = ack(
            &parse(r#"{"command":"dance","request_id":"x"}"#),
            Err("no".into()),
        );
        assert_eq!(
            (a["status"].as_str(), a["request_id"].as_str()),
            (Some("error"), Some("x"))
        );
    }
}

//! `orionctl status`: one line per process, with what it adds to a RUNNING process's
//! description when its work is not being done (the camera stream, the detector; exit 5
//! then) and what stands by to replace it.

use anyhow::Result;
use orion_protocol::Action;
use serde_json::{Value, json};

use super::{Client, NOT_DETECTING, NOT_RUNNING, UNKNOWN_NAME};

impl Client {
    pub(super) fn status(&mut self, names: &[String]) -> Result<u8> {
        let status = self.call(Action::ProcessStatus(None))?;
        let wanted: Vec<String> = if names.is_empty() || names.iter().any(|n| n == "all") {
            status["processes"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            names.to_vec()
        };
        let (mut unknown, mut not_running, mut troubled) = (false, false, false);
        let mut shown = Vec::new();
        for name in &wanted {
            match find(&status, name) {
                Some(p) => {
                    let note = (p["state"] == "RUNNING")
                        .then(|| trouble(name, &status))
                        .flatten();
                    if p["state"] != "RUNNING" {
                        not_running = true;
                    }
                    troubled |= note.is_some();
                    shown.push(p.clone());
                    if !self.json {
                        let description = p["description"].as_str().unwrap_or("");
                        let description = [note.clone(), stand_in(name, &status)]
                            .into_iter()
                            .flatten()
                            .fold(description.to_string(), |d, n| format!("{d}; {n}"));
                        println!(
                            "{:<12}{:<10}{}",
                            name,
                            p["state"].as_str().unwrap_or("?"),
                            description
                        );
                    }
                }
                None => {
                    if !self.json {
                        println!("{name}: ERROR (no such process)");
                    }
                    unknown = true;
                }
            }
        }
        if self.json {
            println!("{}", json!({"processes": shown}));
        }
        // The worst first: a name oriond does not run, a process down, work not done.
        Ok(match (unknown, not_running, troubled) {
            (true, _, _) => UNKNOWN_NAME,
            (_, true, _) => NOT_RUNNING,
            (_, _, true) => NOT_DETECTING,
            _ => 0,
        })
    }
}

pub(super) fn find<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["processes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// What is wrong with a RUNNING process's work, for the description column: the camera
/// stream of `capture`, the detector's state. `None` when it is healthy.
pub fn trouble(name: &str, status: &Value) -> Option<String> {
    match name {
        "capture" => {
            let stream = &status["stream"];
            let state = stream["state"].as_str()?;
            if state == "running" {
                return None;
            }
            let mut note = format!("camera {state}");
            if let Some(ms) = stream["retry_in_ms"].as_u64() {
                note += &format!(" (retry in {:.0} s)", (ms as f64 / 1000.0).ceil());
            }
            if let Some(e) = stream["last_error"].as_str() {
                let e: String = e.chars().take(120).collect();
                note += &format!(": {e}");
            }
            Some(note)
        }
        "detector" => match status["detector"]["state"].as_str()? {
            "running" => None,
            "starting_worker" => Some("detector starting its worker".into()),
            other => Some(format!("detector {other}")),
        },
        _ => None,
    }
}

/// What stands by to replace a process when it dies (the standby detector), for the
/// description column; not a trouble.
pub fn stand_in(name: &str, status: &Value) -> Option<String> {
    if name != "detector" {
        return None;
    }
    let current = &status["detector_standby"]["current"];
    let pid = current["pid"].as_u64()?;
    Some(match current["ready"] == true {
        true => format!("standby pid {pid} loaded"),
        false => format!("standby pid {pid} loading"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_detector_line_names_its_standby() {
        let s = json!({"detector_standby": {"current": {"pid": 42, "ready": true}}});
        assert_eq!(
            stand_in("detector", &s).as_deref(),
            Some("standby pid 42 loaded")
        );
        assert_eq!(stand_in("capture", &s), None);
        let loading = json!({"detector_standby": {"current": {"pid": 7, "ready": false}}});
        assert_eq!(
            stand_in("detector", &loading).as_deref(),
            Some("standby pid 7 loading")
        );
        let none = json!({"detector_standby": {"current": null}});
        assert_eq!(stand_in("detector", &none), None);
    }

    #[test]
    fn the_description_says_what_a_running_process_does_not_do() {
        let healthy = json!({"stream": {"state": "running"}, "detector": {"state": "running"}});
        for name in ["capture", "detector", "control", "broker"] {
            assert_eq!(trouble(name, &healthy), None, "{name}");
        }
        let down = json!({
            "stream": {"state": "reconnecting", "retry_in_ms": 7400, "last_error": "Could not open resource"},
            "detector": {"state": "paused"},
        });
        assert_eq!(
            trouble("capture", &down).as_deref(),
            Some("camera reconnecting (retry in 8 s): Could not open resource")
        );
        assert_eq!(
            trouble("detector", &down).as_deref(),
            Some("detector paused")
        );
        let starting =
            json!({"stream": {"state": "connecting"}, "detector": {"state": "starting_worker"}});
        assert_eq!(
            trouble("capture", &starting).as_deref(),
            Some("camera connecting")
        );
        assert_eq!(
            trouble("detector", &starting).as_deref(),
            Some("detector starting its worker")
        );
        // No report yet (the process just started): nothing to say.
        assert_eq!(trouble("capture", &json!({})), None);
    }
}

//! What `orionctl status` adds to a RUNNING process's description when its work is not
//! being done (the camera stream, the detector), and why it exits 5 then.

use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

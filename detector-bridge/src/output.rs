//! The bridge's output until the control process consumes it: one JSON object per line on
//! stdout — `{"type":"detection","detection":{…DetectionMessage}}`, `{"type":"ack", …}`,
//! `{"type":"detector_status", …}`. Logs go to stderr.

use std::io::Write;

use orion_protocol::DetectionMessage;
use serde::Serialize;

pub fn emit(value: &impl Serialize) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (consumer gone) must not stop detection; the supervisor restarts us
    // with a new pipe if it wants our output.
    if serde_json::to_writer(&mut out, value).is_ok() {
        let _ = out.write_all(b"\n").and_then(|()| out.flush());
    }
}

#[derive(Serialize)]
struct Tagged<'a> {
    #[serde(rename = "type")]
    tag: &'static str,
    detection: &'a DetectionMessage,
}

/// Emits `{"type":"detection","detection":{…the MQTT detection message…}}`.
pub fn emit_detection(detection: &DetectionMessage) {
    emit(&Tagged {
        tag: "detection",
        detection,
    });
}

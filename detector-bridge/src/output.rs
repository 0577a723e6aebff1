//! The bridge's output, through `orion_process::channel` (oriond's socket, or JSON lines on
//! stdout when run by hand): `{"type":"detection","detection":{…DetectionMessage}}`,
//! `{"type":"ack", …}`, `{"type":"detector_status", …}`. Logs go to stderr.

use orion_protocol::DetectionMessage;
use serde::Serialize;

pub fn emit(value: &impl Serialize) {
    orion_process::channel::send(value);
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

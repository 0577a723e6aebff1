//! The detection message (docs/architecture.md#the-detection-path), produced by the detector and published by
//! the control process on `care/inferences/{id}/person_detection`.

use serde::{Deserialize, Serialize};

use crate::units::{ModelSize, NormRect};

/// A box in full-frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BBox,
    pub confidence: f32,
    pub class: String,
}

/// Which region the frame was cropped to before inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoiSource {
    /// The operator's attention ROIs.
    External,
    /// The auto-focus ROI.
    AutoFocus,
    /// The whole frame.
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionMetadata {
    pub frame_width: u32,
    pub frame_height: u32,
    pub model_size: ModelSize,
    pub imgsz: u32,
    pub roi_source: RoiSource,
    /// The region inferred on, normalized to the frame.
    pub region: NormRect,
    /// The ring's writer epoch of the frame: it moves when a new capture process took the
    /// ring over (a rate change, a capture restart), so a backend can see where one ends.
    #[serde(default)]
    pub capture_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionData {
    pub detections: Vec<Detection>,
    pub count: usize,
    pub metadata: DetectionMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub postprocess_ms: f64,
    pub total_ms: f64,
}

/// One message per processed frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionMessage {
    /// Always `person_detection`.
    #[serde(rename = "type")]
    pub kind: String,
    pub instance_id: String,
    pub room_id: String,
    pub frame_seq: u64,
    /// RFC 3339, UTC.
    pub capture_ts: String,
    /// RFC 3339, UTC: stamped once, by orion-control as it publishes (absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_ts: Option<String>,
    /// Capture → publish on the realtime clock, stamped with `publish_ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    pub data: DetectionData,
    pub timing: Timing,
    /// The auto-focus ROI, if auto-focus is on.
    pub suggested_roi: Option<NormRect>,
}

impl DetectionMessage {
    pub const KIND: &'static str = "person_detection";

    /// Stamps the publish time and the latency from the capture time `captured_unix_ns`.
    pub fn stamp(&mut self, now: std::time::SystemTime, captured_unix_ns: u64) {
        let now_ns = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.publish_ts = Some(humantime::format_rfc3339_millis(now).to_string());
        self.latency_ms = Some(now_ns.saturating_sub(captured_unix_ns) as f64 / 1e6);
    }
}

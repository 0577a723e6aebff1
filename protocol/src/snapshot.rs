//! Snapshots (`orionctl snapshot`, the MQTT `get_snapshot`): what oriond asks the
//! `orion-snapshot` helper to draw over the newest frame, and what the helper reports
//! about the frame it took. The helper's output is this report as one framed message
//! ([`crate::wire`]) followed by the encoded image up to the end of its stdout.

use serde::{Deserialize, Serialize};

use crate::detection::{Detection, RoiSource};
use crate::limits::JpegQuality;
use crate::units::{ModelSize, NormRect};

/// Largest encoded snapshot: bounds what the helper may hand oriond and what oriond sends
/// on (base64 in a [`crate::Message::Snapshot`], under [`crate::wire::MAX_FROM_ORIOND`]).
pub const MAX_IMAGE: usize = 8 << 20;

/// Largest snapshot sent over MQTT: one packet, under the 4 MiB packet limit
/// ([`crate::limits::MAX_MQTT_PACKET`]).
pub const MAX_MQTT_IMAGE: usize = crate::limits::MAX_MQTT_PACKET - (64 << 10);

/// Boxes found this much before the frame drawn are not drawn (the detector is down or
/// behind, and the people have moved): the caption says so instead.
pub const STALE_BOXES_NS: u64 = 2_000_000_000;

/// How a snapshot is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// Lossless; what `orionctl snapshot` saves.
    Png,
    /// What MQTT carries (`care/snapshot/{id}`).
    Jpeg,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "png" => Ok(ImageFormat::Png),
            "jpeg" | "jpg" => Ok(ImageFormat::Jpeg),
            other => Err(format!(
                "format must be png or jpeg, got {:?}",
                other.chars().take(16).collect::<String>()
            )),
        }
    }
}

/// A `get_snapshot` request: the format, and a JPEG quality other than the configured one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotRequest {
    pub format: ImageFormat,
    pub quality: Option<JpegQuality>,
}

/// What to draw over the frame, from oriond's last detection and desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    pub format: ImageFormat,
    /// JPEG quality 1..=100 (ignored for PNG).
    pub quality: u8,
    /// Largest encoded image accepted: over it, the snapshot fails and says so.
    pub max_bytes: usize,
    /// The last detection's boxes, in full-frame pixels (none while paused).
    pub detections: Vec<Detection>,
    /// The frame those boxes were found in (the newest frame may be a little newer).
    pub detections_frame_seq: Option<u64>,
    /// That frame's capture time, ns since the Unix epoch.
    pub detections_captured_unix_ns: Option<u64>,
    /// The operator's attention ROIs.
    pub attention_rois: Vec<NormRect>,
    /// The auto-focus region, when auto-focus is on.
    pub focus_region: Option<NormRect>,
    /// The room's zones, outlined with their names.
    #[serde(default)]
    pub zones: Vec<crate::zone::Zone>,
    pub model: Option<ModelSize>,
    pub roi_source: Option<RoiSource>,
    /// Detection is paused: the caption says the frame has no boxes because of it.
    pub paused: bool,
    /// The room, for the caption.
    pub room: String,
}

/// What the helper reports about the frame it drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    pub frame_seq: u64,
    pub width: u32,
    pub height: u32,
    /// The frame's capture time, ns since the Unix epoch.
    pub captured_unix_ns: u64,
    /// The caption was written (false: no font could be read; the drawing is there).
    pub captioned: bool,
    /// The overlay's boxes were drawn (false: none, or too old for this frame).
    pub boxes_drawn: bool,
}

/// The `get_snapshot` ack's data: what was taken (the image follows on its own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    pub format: ImageFormat,
    /// Size of the encoded image.
    pub bytes: usize,
    pub frame_seq: u64,
    pub width: u32,
    pub height: u32,
    /// The frame's capture time, ns since the Unix epoch.
    pub captured_unix_ns: u64,
    pub paused: bool,
    /// The boxes drawn, as found in frame `boxes_frame_seq` (the frame drawn may be a
    /// little newer).
    pub detections: Vec<Detection>,
    pub boxes_frame_seq: Option<u64>,
    /// The caption was written (false: no font could be read).
    pub captioned: bool,
    /// Added by orion-control: the topic the image is published on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl SnapshotReport {
    /// `640x360, frame 1234, 2 persons drawn, 183 kB`.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            format!("{}x{}", self.width, self.height),
            format!("frame {}", self.frame_seq),
        ];
        parts.push(if self.paused {
            "detection paused, no boxes".into()
        } else {
            format!("{} person(s) drawn", self.detections.len())
        });
        if !self.captioned {
            parts.push("no caption: the font is missing".into());
        }
        parts.push(format!("{} kB", self.bytes.div_ceil(1000)));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_as_one_line() {
        let mut r = SnapshotReport {
            format: ImageFormat::Png,
            bytes: 183_200,
            frame_seq: 1234,
            width: 640,
            height: 360,
            captured_unix_ns: 1,
            paused: false,
            detections: Vec::new(),
            boxes_frame_seq: None,
            captioned: true,
            topic: None,
        };
        assert_eq!(
            r.describe(),
            "640x360, frame 1234, 0 person(s) drawn, 184 kB"
        );
        r.paused = true;
        r.captioned = false;
        assert_eq!(
            r.describe(),
            "640x360, frame 1234, detection paused, no boxes, no caption: the font is missing, 184 kB"
        );
    }
}

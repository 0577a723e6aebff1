//! Snapshots: `get_snapshot` from orionctl or MQTT, and with `[snapshot]
//! on_occupancy_change` one for every change of occupied. oriond keeps the last detection;
//! the overlay (its boxes, the attention ROIs, the auto-focus region, paused) goes to an
//! `orion-snapshot` helper (`crate::snapshot_helper`) that reads the newest frame from the ring.
//! Its answer is the ack, then the image as [`Message::Snapshot`] on the same connection.

use std::collections::HashMap;

use base64::Engine;
use orion_protocol::command::{AckError, ErrorKind};
use orion_protocol::message::Message;
use orion_protocol::snapshot::{
    ImageFormat, MAX_IMAGE, MAX_MQTT_IMAGE, Overlay, SnapshotReport, SnapshotRequest,
};
use orion_protocol::status::SnapshotCounters;
use orion_protocol::{DetectionMessage, ProcessName};
use serde_json::json;

use super::Supervisor;
use super::routing::Reply;
use crate::events::Shot;
use crate::snapshot_helper::Helper;

/// Snapshots taken at once; more are refused as busy.
const MAX_AT_ONCE: usize = 2;

/// Snapshots in flight, the last detection, and counters for the status.
#[derive(Default)]
pub(super) struct Snapshots {
    next: u64,
    waiting: HashMap<u64, Waiting>,
    /// The detector's last result (its boxes are drawn) and its frame's capture time.
    pub(super) last_detection: Option<(DetectionMessage, u64)>,
    taken: u64,
    failed: u64,
    last_error: Option<String>,
}

struct Waiting {
    /// Who asked; `None` for one taken because occupancy changed (it goes to MQTT).
    reply: Option<Reply>,
    format: ImageFormat,
    overlay: Overlay,
}

impl Supervisor {
    pub(super) fn snapshot_request(&mut self, reply: Reply, request: SnapshotRequest) {
        let quality = request
            .quality
            .map_or(self.config.snapshot.jpeg_quality, |q| q.get());
        // What goes to MQTT must fit in one MQTT packet.
        let max = if self.speaks_for(reply.conn()) == Some(ProcessName::Control) {
            MAX_MQTT_IMAGE
        } else {
            MAX_IMAGE
        };
        if let Err(e) = self.start_snapshot(Some(reply.clone()), request.format, quality, max) {
            self.answer(&reply, Err(e));
        }
    }

    /// Occupied changed: a JPEG for MQTT, if the config asks for one.
    pub(super) fn snapshot_on_change(&mut self) {
        if !self.config.snapshot.on_occupancy_change {
            return;
        }
        self.snapshot_to_mqtt();
    }

    /// `[snapshot] on_event_start`: a picture of a care event's start.
    pub(super) fn snapshot_on_event_start(&mut self) {
        if self.config.snapshot.on_event_start {
            self.snapshot_to_mqtt();
        }
    }

    fn snapshot_to_mqtt(&mut self) {
        if self.control_conn().is_none() {
            return;
        }
        let quality = self.config.snapshot.jpeg_quality;
        if let Err(e) = self.start_snapshot(None, ImageFormat::Jpeg, quality, MAX_MQTT_IMAGE) {
            tracing::warn!(error = %e, "no snapshot for the occupancy change");
        }
    }

    fn start_snapshot(
        &mut self,
        reply: Option<Reply>,
        format: ImageFormat,
        quality: u8,
        max_bytes: usize,
    ) -> Result<(), AckError> {
        if self.snapshots.waiting.len() >= MAX_AT_ONCE {
            return Err(AckError::new(
                ErrorKind::Busy,
                format!("{MAX_AT_ONCE} snapshots are being taken; try again"),
            ));
        }
        let overlay = self.overlay(format, quality, max_bytes);
        let helper = Helper {
            program: crate::spec::bin_dir(&self.config).join("orion-snapshot"),
            font: self.config.snapshot.font.clone(),
        };
        let id = self.snapshots.next;
        self.snapshots.next += 1;
        crate::snapshot_helper::take(id, &helper, &overlay, &self.ring, &self.events)
            .map_err(|e| AckError::new(ErrorKind::Failed, e))?;
        self.snapshots.waiting.insert(
            id,
            Waiting {
                reply,
                format,
                overlay,
            },
        );
        Ok(())
    }

    /// What to draw: the last result's boxes unless paused, the regions in force now.
    fn overlay(&self, format: ImageFormat, quality: u8, max_bytes: usize) -> Overlay {
        let paused = self.desired.paused;
        let last = self.snapshots.last_detection.as_ref().filter(|_| !paused);
        let captured = last.map(|(_, ns)| *ns);
        let last = last.map(|(d, _)| d);
        Overlay {
            format,
            quality,
            max_bytes,
            detections: last.map(|d| d.data.detections.clone()).unwrap_or_default(),
            detections_frame_seq: last.map(|d| d.frame_seq),
            detections_captured_unix_ns: captured,
            attention_rois: self
                .desired
                .rois
                .as_ref()
                .map(|r| r.rois().to_vec())
                .unwrap_or_default(),
            focus_region: last.and_then(|d| d.suggested_roi),
            zones: self.desired.zones.iter().cloned().collect(),
            model: Some(last.map_or(self.desired.model_size, |d| d.data.metadata.model_size)),
            roi_source: last.map(|d| d.data.metadata.roi_source),
            paused,
            room: self.config.room_id.clone(),
        }
    }

    pub(super) fn snapshot_done(&mut self, id: u64, result: Result<Shot, String>) {
        let Some(w) = self.snapshots.waiting.remove(&id) else {
            return;
        };
        let shot = match result {
            Ok(shot) => {
                self.snapshots.taken += 1;
                shot
            }
            Err(why) => {
                self.snapshots.failed += 1;
                tracing::warn!(error = why, "snapshot failed");
                self.snapshots.last_error = Some(why.clone());
                if let Some(reply) = &w.reply {
                    self.answer(reply, Err(AckError::new(ErrorKind::Failed, why)));
                }
                return;
            }
        };
        let t = &shot.taken;
        let drawn = t.boxes_drawn.then_some(&w.overlay);
        let data = json!(SnapshotReport {
            format: w.format,
            bytes: shot.image.len(),
            frame_seq: t.frame_seq,
            width: t.width,
            height: t.height,
            captured_unix_ns: t.captured_unix_ns,
            paused: w.overlay.paused,
            detections: drawn.map_or_else(Vec::new, |o| o.detections.clone()),
            boxes_frame_seq: drawn.and_then(|o| o.detections_frame_seq),
            captioned: t.captioned,
            topic: None,
        });
        let image = Message::Snapshot {
            request_id: w.reply.as_ref().and_then(|r| r.request_id().cloned()),
            format: w.format,
            frame_seq: t.frame_seq,
            image_base64: base64::engine::general_purpose::STANDARD.encode(&shot.image),
        };
        match &w.reply {
            Some(reply) => {
                self.answer(reply, Ok(data));
                self.registry.send(reply.conn(), &image);
            }
            None => {
                if let Some(control) = self.control_conn() {
                    self.registry.send(control, &image);
                }
            }
        }
    }

    /// For the status: how many were taken, failed, and the last failure.
    pub(super) fn snapshot_status(&self) -> SnapshotCounters {
        let s = &self.snapshots;
        SnapshotCounters {
            taken: s.taken,
            failed: s.failed,
            in_progress: s.waiting.len(),
            last_error: s.last_error.clone(),
            on_occupancy_change: self.config.snapshot.on_occupancy_change,
        }
    }
}

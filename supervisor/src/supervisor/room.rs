//! The host of the room logic (the `orion-room` crate, pure): feeds it every detection the
//! detector sends and the state of the system — paused, detector not running, camera not
//! streaming make occupancy unknown, with the reason — and hands each change to
//! orion-control, which publishes it retained; the status shows the current one.

use orion_protocol::message::Message;
use orion_protocol::{DetectionMessage, NormRect, ProcessName};

use super::Supervisor;
use crate::child::Report;
use orion_room::occupancy::{Coverage, Frame, Occupancy, Settings, Tracker};
use orion_room::sight::{self, Observers};

/// The tracker's settings from `[occupancy]`.
pub(super) fn tracker(config: &orion_config::Config) -> Tracker {
    let o = &config.occupancy;
    Tracker::new(Settings {
        enter_frames: o.enter_frames,
        leave_after: std::time::Duration::from_secs_f64(o.leave_after_s),
        min_confidence: o.min_confidence,
    })
}

impl Supervisor {
    /// A processed frame: its persons count for occupancy.
    pub(super) fn observe(&mut self, detection: &DetectionMessage, captured_unix_ns: u64) {
        if self.why_unknown().is_some() {
            return;
        }
        let confidences: Vec<f64> = detection
            .data
            .detections
            .iter()
            .map(|d| f64::from(d.confidence))
            .collect();
        let metadata = &detection.data.metadata;
        // A crop is judged as a crop, whatever its source; ROIs that cover the frame are
        // the frame.
        let coverage = if metadata.region == NormRect::FULL {
            Coverage::Full
        } else {
            Coverage::Region
        };
        let before = self.occupancy.current().occupied;
        if self.occupancy.frame(Frame {
            seq: detection.frame_seq,
            captured_ns: captured_unix_ns,
            coverage,
            confidences: &confidences,
        }) {
            self.send_occupancy();
            let now = self.occupancy.current().occupied;
            if now.is_some() && now != before {
                self.snapshot_on_change();
            }
        }
    }

    /// After any change of state: nothing detected (paused, down) makes it unknown.
    pub(super) fn gate_occupancy(&mut self) {
        if let Some(why) = self.why_unknown()
            && self.occupancy.unknown(&why)
        {
            self.send_occupancy();
        }
    }

    /// Why no frame is being judged now, if none is (`orion_room::sight`).
    fn why_unknown(&self) -> Option<String> {
        let stream = self
            .children
            .get(&ProcessName::Capture)
            .and_then(|c| c.last_status.as_ref())
            .and_then(Report::capture);
        let observers = Observers {
            paused: self.desired.paused,
            detector: self.state_of(ProcessName::Detector),
            capture: self.state_of(ProcessName::Capture),
            stream: stream.map(|s| (s.state, s.last_error.as_deref())),
        };
        sight::blind(&observers).map(|b| b.to_string())
    }

    pub(super) fn occupancy_now(&self) -> &Occupancy {
        self.occupancy.current()
    }

    pub(super) fn send_occupancy(&mut self) {
        let occupancy = self.occupancy.current().clone();
        let text = serde_json::to_string(&occupancy).unwrap_or_default();
        tracing::info!(occupancy = %text, "occupancy");
        if let Some(control) = self.control_conn() {
            self.registry
                .send(control, &Message::Occupancy { occupancy });
        }
    }
}

//! Room occupancy (`crate::occupancy`) fed from what oriond sees: every detection the
//! detector sends, and the state of the system — paused, detector not running, camera not
//! streaming make it unknown, with the reason. Each change goes to orion-control, which
//! publishes it retained; the status shows the current one.

use orion_protocol::message::Message;
use orion_protocol::{DetectionMessage, ProcessName};
use serde_json::{Value, json};

use super::Supervisor;
use crate::lifecycle::State;
use crate::occupancy::{Occupancy, Settings, Tracker};

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
        let before = self.occupancy.current().occupied;
        if self
            .occupancy
            .frame(detection.frame_seq, captured_unix_ns, &confidences)
        {
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

    /// Why no frame is being judged now, if none is.
    fn why_unknown(&self) -> Option<String> {
        if self.desired.paused {
            return Some("paused: detection is off".into());
        }
        let state = |n| self.state_of(n);
        if let Some(s) = state(ProcessName::Detector)
            && s != State::Running
        {
            return Some(format!("the detector is {}", s.as_str()));
        }
        if let Some(s) = state(ProcessName::Capture)
            && s != State::Running
        {
            return Some(format!("the capture is {}", s.as_str()));
        }
        let stream = self
            .children
            .get(&ProcessName::Capture)
            .and_then(|c| c.last_status.as_ref());
        let stream_state = stream
            .and_then(|s| s.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        if stream_state != "running" {
            let error = stream
                .and_then(|s| s.get("last_error"))
                .and_then(Value::as_str)
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Some(format!("camera {stream_state}{error}"));
        }
        None
    }

    pub(super) fn occupancy_now(&self) -> &Occupancy {
        self.occupancy.current()
    }

    pub(super) fn send_occupancy(&mut self) {
        let occupancy = json!(self.occupancy.current());
        tracing::info!(%occupancy, "occupancy");
        if let Some(control) = self.control_conn() {
            self.peers.send(control, &Message::Occupancy { occupancy });
        }
    }
}

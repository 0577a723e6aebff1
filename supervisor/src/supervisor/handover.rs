//! Make-before-break capture replacement (a rate change; a reload that changes the camera
//! or the stream settings). The successor starts in standby beside the running capture
//! (`orion-capture --standby`): it connects, decodes and holds its newest frame, writes
//! nothing. Once it holds one, the old capture is stopped the ordinary way; when its exit
//! has been reaped and oriond would start a capture again, it adopts the successor instead
//! of spawning and tells it to take the ring over (`Message::TakeOver`); the successor
//! claims the ring (the next writer epoch) and writes its held frame at once. Only one
//! process ever writes the ring: the claim comes after the old writer's exit.
//!
//! Without a frame within [`HANDOVER_TIMEOUT`] (a camera that is down or slow), or if the
//! successor dies, it is dropped and the capture restarts the ordinary way (stop, then a
//! new process that reconnects with backoff); so does a change made while the stream is
//! not running. How the last replacement went is in the status (`capture_handover`) and in
//! the rate change's ack.

use std::time::{Duration, SystemTime};

use orion_protocol::message::Message;
use orion_protocol::status::{Handover, HandoverMode};
use orion_protocol::{CaptureStatus, ProcessName, StreamState};

use super::Supervisor;
use crate::child::Report;
use crate::events::{Timer, after};
use crate::lifecycle::State;
use crate::registry::Part;

/// How long a successor may take to hold its first frame (RTSP connect and a keyframe
/// take 0.3–0.5 s here; a camera that is down never gets there).
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A capture started in standby to replace the running one.
pub(super) struct Successor {
    /// Its incarnation in the registry.
    pub(super) generation: u64,
    /// It holds a frame (the old capture is being stopped).
    held_after: Option<Duration>,
    last_status: Option<CaptureStatus>,
}

impl Supervisor {
    /// Replaces the capture with one built from the current config and desired state:
    /// make-before-break when the stream runs, else the ordinary restart.
    pub(super) fn replace_capture(&mut self) {
        self.drop_successor("superseded by a newer change");
        if let Err(why) = self.can_hand_over() {
            self.handover_done(Handover::restart(why, 0));
            return self.restart(ProcessName::Capture);
        }
        let generation = self.next_generation();
        let spawned = self.start_process(
            ProcessName::Capture,
            Part::Understudy,
            generation,
            &["--standby"],
        );
        match spawned {
            Ok(pid) => {
                tracing::info!(pid, "capture successor started in standby");
                self.successor = Some(Successor {
                    generation,
                    held_after: None,
                    last_status: None,
                });
                after(
                    &self.events,
                    HANDOVER_TIMEOUT,
                    Timer::Handover { generation },
                );
            }
            Err(why) => {
                self.handover_done(Handover::restart(why, 0));
                self.restart(ProcessName::Capture);
            }
        }
    }

    /// Why the running capture cannot be replaced make-before-break, if it cannot.
    fn can_hand_over(&self) -> Result<(), String> {
        if self.shutdown.is_some() {
            return Err("oriond is shutting down".into());
        }
        let capture = self
            .children
            .get(&ProcessName::Capture)
            .ok_or("no capture is managed")?;
        if capture.state() != State::Running {
            return Err(format!("the capture is {}", capture.state().as_str()));
        }
        let stream = capture
            .last_status
            .as_ref()
            .and_then(Report::capture)
            .map(|s| s.state);
        if stream != Some(StreamState::Running) {
            let stream = stream.map_or("unknown", StreamState::as_str);
            return Err(format!("the stream is {stream}, not running"));
        }
        Ok(())
    }

    /// A number no spawn has used: a successor and the capture it replaces never share one,
    /// so their exits and timers are told apart.
    pub(super) fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    /// A report from the successor: once it holds a frame, the old capture goes.
    pub(super) fn successor_message(&mut self, m: Message) {
        let Message::CaptureStatus(status) = m else {
            return;
        };
        let Some(generation) = self.successor.as_ref().map(|s| s.generation) else {
            return;
        };
        let held = self.understudy_age(generation);
        let Some(s) = self.successor.as_mut() else {
            return;
        };
        s.last_status = Some(status.clone());
        if status.state == StreamState::Standby && s.held_after.is_none() {
            s.held_after = Some(held);
            tracing::info!(
                held_after_ms = held.as_millis() as u64,
                "capture successor holds a frame; stopping the old capture"
            );
            self.restart(ProcessName::Capture);
        }
    }

    /// The successor's process ended (it has left the registry).
    pub(super) fn successor_exited(&mut self, status: &str) {
        if let Some(s) = self.successor.take() {
            tracing::warn!(status, "capture successor exited before taking over");
            let why = format!("the successor exited ({status}) before taking over");
            self.handover_done(Handover::restart(why, 0));
            // The old capture may already be on its way out; if not, restart it the
            // ordinary way so the new settings still apply.
            if s.held_after.is_none() {
                self.restart(ProcessName::Capture);
            }
        }
    }

    /// No frame in time: drop the successor, restart the ordinary way.
    pub(super) fn handover_timed_out(&mut self, generation: u64) {
        let waiting = self
            .successor
            .as_ref()
            .is_some_and(|s| s.generation == generation && s.held_after.is_none());
        if waiting {
            let why = format!(
                "no frame from the camera in {} s; the capture restarts and reconnects",
                HANDOVER_TIMEOUT.as_secs()
            );
            self.drop_successor(&why);
            self.handover_done(Handover::restart(why, 0));
            self.restart(ProcessName::Capture);
        }
    }

    /// SIGKILLs the successor (its exit, when reaped, is recognised and ignored).
    pub(super) fn drop_successor(&mut self, why: &str) {
        if let Some(s) = self.successor.take() {
            let pid = self.kill_understudy(s.generation);
            tracing::info!(pid, why, "capture successor dropped");
        }
    }

    /// Instead of spawning a capture: adopts a successor that holds a frame and tells it
    /// to take the ring over. Returns whether it did (else spawn as usual; a successor
    /// still waiting for its first frame is dropped then, the new process replaces it).
    pub(super) fn adopt_successor(&mut self) -> bool {
        let ready = self
            .successor
            .as_ref()
            .is_some_and(|s| s.held_after.is_some() && self.understudy_connected(s.generation));
        if !ready {
            self.drop_successor("the capture restarted before the successor held a frame");
            return false;
        }
        let Some(s) = self.successor.take() else {
            return false;
        };
        let switched = self.understudy_age(s.generation);
        self.adopt(ProcessName::Capture, s.generation);
        if let Some(child) = self.children.get_mut(&ProcessName::Capture) {
            child.last_status = s.last_status.map(Report::Capture);
        }
        tracing::info!(
            pid = self
                .registry
                .serving(ProcessName::Capture)
                .map(|inc| inc.pid),
            "capture successor adopted; taking the ring over"
        );
        self.handover_done(Handover {
            mode: HandoverMode::MakeBeforeBreak,
            why: None,
            held_after_ms: s.held_after.map(|d| d.as_millis() as u64),
            switched_after_ms: Some(switched.as_millis() as u64),
            at_unix_ms: 0,
        });
        true
    }

    /// Records how the capture change went, stamped now.
    fn handover_done(&mut self, mut outcome: Handover) {
        outcome.at_unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_handover = Some(outcome);
    }
}

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
use super::act::Act;
use crate::child::Report;
use crate::events::{Timer, after};
use crate::lifecycle::State;
use crate::registry::Part;

/// How long a successor may take to hold its first frame (RTSP connect and a keyframe
/// take 0.3–0.5 s here; a camera that is down never gets there).
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A capture started in standby to replace the running one.
#[derive(Debug)]
pub(super) struct Successor {
    /// Its incarnation in the registry.
    pub(super) generation: u64,
    /// It holds a frame (the old capture is being stopped).
    held_after: Option<Duration>,
    last_status: Option<CaptureStatus>,
}

// ---- decisions (pure: the situation and the event in, effects out) ------------------------

/// Why the running capture cannot be replaced make-before-break, if it cannot.
fn can_hand_over(
    shutting_down: bool,
    capture: Option<State>,
    stream: Option<StreamState>,
) -> Result<(), String> {
    if shutting_down {
        return Err("oriond is shutting down".into());
    }
    let capture = capture.ok_or("no capture is managed")?;
    if capture != State::Running {
        return Err(format!("the capture is {}", capture.as_str()));
    }
    if stream != Some(StreamState::Running) {
        let stream = stream.map_or("unknown", StreamState::as_str);
        return Err(format!("the stream is {stream}, not running"));
    }
    Ok(())
}

/// The capture is replaced the ordinary way (stop, start) for `why`.
fn ordinary_restart(why: String) -> Vec<Act> {
    vec![
        Act::Handover(Handover::restart(why, 0)),
        Act::Restart(ProcessName::Capture),
    ]
}

impl Successor {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            held_after: None,
            last_status: None,
        }
    }

    /// A report from it, `age` after it started: once it holds a frame, the old capture
    /// goes (the capture's restart then adopts it).
    fn report(&mut self, status: CaptureStatus, age: Duration) -> Vec<Act> {
        let first_frame = status.state == StreamState::Standby && self.held_after.is_none();
        self.last_status = Some(status);
        if !first_frame {
            return vec![];
        }
        self.held_after = Some(age);
        vec![Act::Restart(ProcessName::Capture)]
    }

    /// Its time to hold a frame (the timer of `generation`) is up: without one, it is
    /// dropped and the capture restarts the ordinary way.
    fn timed_out(&self, generation: u64) -> Vec<Act> {
        if self.generation != generation || self.held_after.is_some() {
            return vec![];
        }
        let why = format!(
            "no frame from the camera in {} s; the capture restarts and reconnects",
            HANDOVER_TIMEOUT.as_secs()
        );
        let mut effects = vec![Act::DropSuccessor(why.clone())];
        effects.extend(ordinary_restart(why));
        effects
    }

    /// It exited (`status`) before taking over. If the old capture is not on its way out
    /// yet, it restarts the ordinary way so the new settings still apply.
    fn exited(&self, status: &str) -> Vec<Act> {
        let why = format!("the successor exited ({status}) before taking over");
        let mut effects = ordinary_restart(why);
        if self.held_after.is_some() {
            effects.retain(|e| !matches!(e, Act::Restart(_)));
        }
        effects
    }

    /// It may take the capture's place: it holds a frame and is connected.
    fn adoptable(&self, connected: bool) -> bool {
        self.held_after.is_some() && connected
    }
}

// ---- carried out ---------------------------------------------------------------------------

impl Supervisor {
    /// Replaces the capture with one built from the current config and desired state:
    /// make-before-break when the stream runs, else the ordinary restart.
    pub(super) fn replace_capture(&mut self) {
        self.drop_successor("superseded by a newer change");
        let capture = self.children.get(&ProcessName::Capture);
        let stream = capture
            .and_then(|c| c.last_status.as_ref())
            .and_then(Report::capture)
            .map(|s| s.state);
        let possible = can_hand_over(self.shutdown.is_some(), capture.map(|c| c.state()), stream);
        if let Err(why) = possible {
            return self.carry_out(ordinary_restart(why));
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
                self.successor = Some(Successor::new(generation));
                after(
                    &self.events,
                    HANDOVER_TIMEOUT,
                    Timer::Handover { generation },
                );
            }
            Err(why) => self.carry_out(ordinary_restart(why)),
        }
    }

    /// A number no spawn has used: a successor and the capture it replaces never share one,
    /// so their exits and timers are told apart.
    pub(super) fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    /// A report from the successor (see [`Successor::report`]).
    pub(super) fn successor_message(&mut self, m: Message) {
        let Message::CaptureStatus(status) = m else {
            return;
        };
        let Some(generation) = self.successor.as_ref().map(|s| s.generation) else {
            return;
        };
        let age = self.understudy_age(generation);
        let Some(s) = self.successor.as_mut() else {
            return;
        };
        let effects = s.report(status, age);
        if !effects.is_empty() {
            tracing::info!(
                held_after_ms = age.as_millis() as u64,
                "capture successor holds a frame; stopping the old capture"
            );
        }
        self.carry_out(effects);
    }

    /// The successor's process ended (it has left the registry).
    pub(super) fn successor_exited(&mut self, status: &str) {
        if let Some(s) = self.successor.take() {
            tracing::warn!(status, "capture successor exited before taking over");
            self.carry_out(s.exited(status));
        }
    }

    /// The successor's time to hold a frame is up (see [`Successor::timed_out`]).
    pub(super) fn handover_timed_out(&mut self, generation: u64) {
        if let Some(effects) = self.successor.as_ref().map(|s| s.timed_out(generation)) {
            self.carry_out(effects);
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
            .is_some_and(|s| s.adoptable(self.understudy_connected(s.generation)));
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
    pub(super) fn handover_done(&mut self, mut outcome: Handover) {
        outcome.at_unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_handover = Some(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: ProcessName = ProcessName::Capture;

    fn report(state: StreamState) -> CaptureStatus {
        CaptureStatus {
            state,
            fps: 0.0,
            frames: 0,
            reconnects: 0,
            last_error: None,
            retry_in_ms: None,
            source: "rtsp://cam/room".into(),
            width: 640,
            height: 480,
            rate_hz: 2.0,
            last_seq: 0,
            epoch: 0,
            sandbox: None,
        }
    }

    #[test]
    fn only_a_running_stream_is_handed_over_make_before_break() {
        let running = Some(State::Running);
        let stream = Some(StreamState::Running);
        assert_eq!(can_hand_over(false, running, stream), Ok(()));
        assert!(can_hand_over(true, running, stream).is_err());
        assert!(can_hand_over(false, None, stream).is_err());
        let starting = can_hand_over(false, Some(State::Starting), stream).unwrap_err();
        assert_eq!(starting, "the capture is STARTING");
        let down = can_hand_over(false, running, Some(StreamState::Reconnecting)).unwrap_err();
        assert!(down.contains("reconnecting"), "{down}");
        let unknown = can_hand_over(false, running, None).unwrap_err();
        assert!(unknown.contains("unknown"), "{unknown}");
    }

    #[test]
    fn the_first_held_frame_stops_the_old_capture_once() {
        let mut s = Successor::new(7);
        assert!(!s.adoptable(true), "no frame yet");
        assert_eq!(
            s.report(report(StreamState::Connecting), Duration::ZERO),
            vec![]
        );
        let held = Duration::from_millis(420);
        assert_eq!(
            s.report(report(StreamState::Standby), held),
            vec![Act::Restart(CAPTURE)]
        );
        assert_eq!(
            s.report(report(StreamState::Standby), Duration::from_secs(1)),
            vec![],
            "the old capture is stopped once"
        );
        assert_eq!(s.held_after, Some(held));
        assert!(s.adoptable(true));
        assert!(!s.adoptable(false), "not before its hello");
        assert_eq!(s.timed_out(7), vec![], "it holds a frame: no timeout");
    }

    #[test]
    fn without_a_frame_in_time_the_capture_restarts_the_ordinary_way() {
        let s = Successor::new(7);
        assert_eq!(s.timed_out(6), vec![], "another successor's timer");
        let effects = s.timed_out(7);
        assert!(matches!(effects[0], Act::DropSuccessor(_)), "{effects:?}");
        assert!(matches!(&effects[1], Act::Handover(h) if h.mode == HandoverMode::Restart));
        assert_eq!(effects[2], Act::Restart(CAPTURE));
        assert_eq!(effects.len(), 3);
    }

    #[test]
    fn a_successor_that_dies_restarts_the_capture_unless_it_is_going_already() {
        let waiting = Successor::new(7);
        let effects = waiting.exited("signal 9");
        assert_eq!(effects.last(), Some(&Act::Restart(CAPTURE)));
        let mut held = Successor::new(8);
        held.report(report(StreamState::Standby), Duration::from_millis(300));
        let effects = held.exited("signal 9");
        assert!(
            matches!(&effects[..], [Act::Handover(h)] if h.why.as_deref().is_some_and(|w| w.contains("signal 9"))),
            "{effects:?}"
        );
    }
}

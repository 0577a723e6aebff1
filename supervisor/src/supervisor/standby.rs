//! The standby detector (`[detector] standby`, ADR 0008). Beside the running detector,
//! oriond keeps a second one started with `--standby`: its worker has imported ONNX Runtime
//! and loaded the current model (at a low CPU priority), and it infers nothing. When the
//! detector dies and oriond would start it again, it adopts the standby instead and tells
//! it to take over (`Message::TakeOver`); the desired state is re-applied to it as to any
//! started detector. A detector crash then costs one inference, not a process,
//! interpreter, import and model start. A new standby follows once the detector has run
//! for [`STANDBY_DELAY`] and loads nothing itself (no model change, its spare loaded): one
//! load at a time beside the worker serving frames.
//!
//! A standby started from other settings than the detector's now (a model change, a
//! config reload) is dropped and replaced; one that is not loaded yet when the detector
//! dies is dropped, and the detector restarts the ordinary way. Status: `detector_standby`.

use std::time::{Duration, Instant};

use orion_protocol::message::Message;
use orion_protocol::status::{StandbyNow, StandbyStatus};
use orion_protocol::{DetectorState, ProcessName};

use super::Supervisor;
use crate::child::Report;
use crate::lifecycle::State;
use crate::registry::{Incarnation, Part};

/// How long the detector runs before a standby starts beside it, and how long after a
/// standby was dropped for other settings the next one starts (the detector's first
/// inferences, and its own spare worker's load, come first).
pub const STANDBY_DELAY: Duration = Duration::from_secs(5);
/// How often oriond checks that the standby matches the detector's settings.
pub const STANDBY_CHECK: Duration = Duration::from_secs(1);
/// How long after a standby that died or could not start the next one may start.
const STANDBY_RETRY: Duration = Duration::from_secs(10);

/// A detector started with `--standby`.
pub(super) struct Standby {
    /// Its incarnation in the registry.
    pub(super) generation: u64,
    /// What it was started with (`crate::spec::detector_identity`): adopted only if a
    /// detector would be started with the same now.
    launch: Vec<String>,
    /// It reported `standby`: its worker is loaded.
    ready_after: Option<Duration>,
}

/// The detector's report says no model is loading in it: no model change, and its spare
/// (if it keeps one) loaded. A standby loads only then, one load at a time beside the
/// worker serving frames (a model change drops the standby, and the detector's new spare
/// loads first).
fn loads_nothing(report: &Report) -> bool {
    report.detector().is_some_and(|d| {
        d.loading.is_none() && (d.spare_worker_pid.is_none() || d.spare_worker_ready)
    })
}

/// What oriond tells about its standby detector and the take-overs so far.
#[derive(Default)]
pub(super) struct StandbyRecord {
    /// Detector deaths a standby took over.
    pub takeovers: u64,
    /// Why the last standby was dropped (or could not start), if one was.
    pub last_dropped: Option<String>,
    /// No standby starts before this (after one died or could not start).
    pub not_before: Option<Instant>,
}

impl Supervisor {
    /// Every [`STANDBY_CHECK`]: starts a standby when one is wanted, drops one that no
    /// longer matches the detector.
    pub(super) fn check_standby(&mut self) {
        let wanted = self.config.detector.standby && self.shutdown.is_none();
        let detector = self.children.get(&ProcessName::Detector);
        let state = detector.map(|c| c.state());
        if !wanted || matches!(state, None | Some(State::Stopped | State::Fatal)) {
            return self.drop_standby("no detector runs, or the standby is off");
        }
        if let Some(s) = &self.standby {
            if Some(&s.launch) != self.detector_launch().as_ref() {
                self.drop_standby("the detector's settings changed");
                self.standby_record.not_before = Some(Instant::now() + STANDBY_DELAY);
            }
            return;
        }
        let settled = state == Some(State::Running)
            && self
                .registry
                .serving(ProcessName::Detector)
                .is_some_and(|inc| inc.started.elapsed() >= STANDBY_DELAY)
            && detector.is_some_and(|c| c.last_status.as_ref().is_some_and(loads_nothing));
        let allowed = self
            .standby_record
            .not_before
            .is_none_or(|t| Instant::now() >= t);
        if settled && allowed {
            self.start_standby();
        }
    }

    /// What a detector would be started with now, but for what is re-applied by command
    /// (`crate::spec::detector_identity`).
    fn detector_launch(&self) -> Option<Vec<String>> {
        crate::spec::detector_identity(&self.config, &self.config_path, &self.desired).ok()
    }

    fn start_standby(&mut self) {
        let Some(launch) = self.detector_launch() else {
            return;
        };
        let generation = self.next_generation();
        let started = self.start_process(
            ProcessName::Detector,
            Part::Understudy,
            generation,
            &["--standby"],
        );
        match started {
            Ok(pid) => {
                tracing::info!(pid, "standby detector started");
                self.standby = Some(Standby {
                    generation,
                    launch,
                    ready_after: None,
                });
                self.push_status();
            }
            Err(why) => {
                tracing::warn!(why, "standby detector not started");
                self.standby_record.last_dropped = Some(format!("could not start: {why}"));
                self.standby_record.not_before = Some(Instant::now() + STANDBY_RETRY);
            }
        }
    }

    /// A report from the standby: `standby` means its worker is loaded.
    pub(super) fn standby_message(&mut self, m: Message) {
        let Message::DetectorStatus(status) = m else {
            return;
        };
        let Some(generation) = self.standby.as_ref().map(|s| s.generation) else {
            return;
        };
        let after = self.understudy_age(generation);
        if let Some(s) = self.standby.as_mut()
            && status.state == DetectorState::Standby
            && s.ready_after.is_none()
        {
            s.ready_after = Some(after);
            tracing::info!(
                generation,
                ready_after_ms = after.as_millis() as u64,
                "standby detector loaded"
            );
            self.push_status();
        }
    }

    /// The standby's process ended (it has left the registry).
    pub(super) fn standby_exited(&mut self, inc: &Incarnation, status: &str) {
        if self.standby.take().is_some() {
            tracing::warn!(pid = inc.pid, status, "standby detector exited");
            self.standby_record.last_dropped = Some(format!("it exited ({status})"));
            self.standby_record.not_before = Some(Instant::now() + STANDBY_RETRY);
            self.push_status();
        }
    }

    /// SIGKILLs the standby (its exit, when reaped, is recognised and ignored).
    pub(super) fn drop_standby(&mut self, why: &str) {
        if let Some(s) = self.standby.take() {
            let pid = self.kill_understudy(s.generation);
            tracing::info!(pid, why, "standby detector dropped");
            self.standby_record.last_dropped = Some(why.to_string());
            self.push_status();
        }
    }

    /// Instead of spawning a detector: adopts a loaded standby started with the settings
    /// a detector would get now, and tells it to take over. Returns whether it did (else
    /// spawn as usual; a standby that cannot be adopted is dropped, a new one follows).
    pub(super) fn adopt_standby(&mut self) -> bool {
        let current = self.detector_launch();
        let adoptable = self.standby.as_ref().map(|s| {
            if s.ready_after.is_none() || !self.understudy_connected(s.generation) {
                Err("the detector restarted before the standby was loaded")
            } else if Some(&s.launch) != current.as_ref() {
                Err("the detector's settings changed")
            } else {
                Ok(())
            }
        });
        match adoptable {
            None => return false,
            Some(Err(why)) => {
                self.drop_standby(why);
                return false;
            }
            Some(Ok(())) => {}
        }
        let Some(s) = self.standby.take() else {
            return false;
        };
        self.adopt(ProcessName::Detector, s.generation);
        self.standby_record.takeovers += 1;
        tracing::info!(
            pid = self
                .registry
                .serving(ProcessName::Detector)
                .map(|inc| inc.pid),
            "standby detector adopted; taking over"
        );
        true
    }

    /// `detector_standby` in the status.
    pub(super) fn standby_status(&self) -> StandbyStatus {
        let current = self.standby.as_ref().and_then(|s| {
            let inc = self.understudy(s.generation)?;
            Some(StandbyNow {
                pid: inc.pid,
                ready: s.ready_after.is_some(),
                ready_after_ms: s.ready_after.map(|d| d.as_millis() as u64),
                age_s: inc.started.elapsed().as_secs_f64(),
            })
        });
        StandbyStatus {
            enabled: self.config.detector.standby,
            current,
            takeovers: self.standby_record.takeovers,
            last_dropped: self.standby_record.last_dropped.clone(),
        }
    }
}

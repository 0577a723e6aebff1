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
use super::act::Act;
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

// ---- decisions (pure: the situation and the time in, effects out) -------------------------

/// What the periodic check looks at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Situation<'a> {
    /// `[detector] standby` is on and oriond is not shutting down.
    pub wanted: bool,
    pub detector: Option<State>,
    /// How long the detector's incarnation has run.
    pub detector_age: Option<Duration>,
    /// Its last report says it loads nothing ([`loads_nothing`]).
    pub detector_idle: bool,
    /// What a detector would be started with now (`crate::spec::detector_identity`).
    pub launch_now: Option<&'a [String]>,
    /// What the standby running now was started with, if one runs.
    pub standby: Option<&'a [String]>,
    /// The memory gate shed the stand-ins: why (`crate::memory`).
    pub shed: Option<&'static str>,
}

/// Every [`STANDBY_CHECK`]: a standby is started once the detector has settled, dropped
/// when no detector runs or the detector's settings changed (the next one after
/// [`STANDBY_DELAY`]).
pub(super) fn check(s: &Situation, record: &mut StandbyRecord, now: Instant) -> Vec<Act> {
    let detector_down = matches!(s.detector, None | Some(State::Stopped | State::Fatal));
    if !s.wanted || detector_down {
        return match s.standby {
            Some(_) => vec![Act::DropStandby("no detector runs, or the standby is off")],
            None => vec![],
        };
    }
    if let Some(why) = s.shed {
        return match s.standby {
            Some(_) => vec![Act::DropStandby(why)],
            None => vec![],
        };
    }
    if let Some(launch) = s.standby {
        if Some(launch) != s.launch_now {
            record.not_before = Some(now + STANDBY_DELAY);
            return vec![Act::DropStandby("the detector's settings changed")];
        }
        return vec![];
    }
    let settled = s.detector == Some(State::Running)
        && s.detector_age.is_some_and(|age| age >= STANDBY_DELAY)
        && s.detector_idle;
    let allowed = record.not_before.is_none_or(|t| now >= t);
    if settled && allowed && s.launch_now.is_some() {
        vec![Act::StartStandby]
    } else {
        vec![]
    }
}

/// Whether a standby may take the detector's place now; why not.
pub(super) fn adoptable(
    standby: &Standby,
    connected: bool,
    launch_now: Option<&[String]>,
) -> Result<(), &'static str> {
    if standby.ready_after.is_none() || !connected {
        Err("the detector restarted before the standby was loaded")
    } else if Some(standby.launch.as_slice()) != launch_now {
        Err("the detector's settings changed")
    } else {
        Ok(())
    }
}

// ---- carried out ---------------------------------------------------------------------------

impl Supervisor {
    /// Every [`STANDBY_CHECK`] (see [`check`]).
    pub(super) fn check_standby(&mut self) {
        let launch_now = self.detector_launch();
        let detector = self.children.get(&ProcessName::Detector);
        let situation = Situation {
            wanted: self.config.detector.standby && self.shutdown.is_none(),
            detector: detector.map(|c| c.state()),
            detector_age: self
                .registry
                .serving(ProcessName::Detector)
                .map(|inc| inc.started.elapsed()),
            detector_idle: detector
                .is_some_and(|c| c.last_status.as_ref().is_some_and(loads_nothing)),
            launch_now: launch_now.as_deref(),
            standby: self.standby.as_ref().map(|s| s.launch.as_slice()),
            shed: self.stand_ins.shed_note(),
        };
        let effects = check(&situation, &mut self.standby_record, Instant::now());
        self.carry_out(effects);
    }

    /// What a detector would be started with now, but for what is re-applied by command
    /// (`crate::spec::detector_identity`).
    fn detector_launch(&self) -> Option<Vec<String>> {
        crate::spec::detector_identity(&self.config, &self.config_path, &self.desired).ok()
    }

    pub(super) fn start_standby(&mut self) {
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
        let launch_now = self.detector_launch();
        let adoptable = self.standby.as_ref().map(|s| {
            let connected = self.understudy_connected(s.generation);
            adoptable(s, connected, launch_now.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(model: &str) -> Vec<String> {
        vec!["--model".into(), model.into()]
    }

    /// A detector RUNNING for `age`, idle, with no standby, on by config.
    fn settled<'a>(age: Duration, now: &'a [String]) -> Situation<'a> {
        Situation {
            wanted: true,
            detector: Some(State::Running),
            detector_age: Some(age),
            detector_idle: true,
            launch_now: Some(now),
            standby: None,
            shed: None,
        }
    }

    #[test]
    fn a_standby_starts_once_the_detector_has_settled_and_loads_nothing() {
        let now = Instant::now();
        let small = launch("s");
        let mut record = StandbyRecord::default();
        let early = settled(STANDBY_DELAY - Duration::from_millis(1), &small);
        assert_eq!(check(&early, &mut record, now), vec![]);
        let s = settled(STANDBY_DELAY, &small);
        assert_eq!(check(&s, &mut record, now), vec![Act::StartStandby]);
        let loading = Situation {
            detector_idle: false,
            ..s
        };
        assert_eq!(
            check(&loading, &mut record, now),
            vec![],
            "one load at a time"
        );
        let starting = Situation {
            detector: Some(State::Starting),
            ..s
        };
        assert_eq!(check(&starting, &mut record, now), vec![]);
        let off = Situation { wanted: false, ..s };
        assert_eq!(check(&off, &mut record, now), vec![]);
    }

    #[test]
    fn after_a_standby_died_the_next_waits_until_not_before() {
        let t0 = Instant::now();
        let small = launch("s");
        let mut record = StandbyRecord {
            not_before: Some(t0 + STANDBY_RETRY),
            ..Default::default()
        };
        let s = settled(Duration::from_secs(60), &small);
        assert_eq!(check(&s, &mut record, t0), vec![]);
        let later = t0 + STANDBY_RETRY - Duration::from_millis(1);
        assert_eq!(check(&s, &mut record, later), vec![]);
        assert_eq!(
            check(&s, &mut record, t0 + STANDBY_RETRY),
            vec![Act::StartStandby]
        );
    }

    #[test]
    fn a_standby_is_dropped_when_no_detector_runs_or_its_settings_changed() {
        let t0 = Instant::now();
        let (small, large) = (launch("s"), launch("l"));
        let mut record = StandbyRecord::default();
        let running = Situation {
            standby: Some(&small),
            ..settled(Duration::from_secs(60), &small)
        };
        assert_eq!(check(&running, &mut record, t0), vec![], "it matches: kept");
        for down in [None, Some(State::Stopped), Some(State::Fatal)] {
            let s = Situation {
                detector: down,
                ..running
            };
            assert_eq!(
                check(&s, &mut record, t0),
                vec![Act::DropStandby("no detector runs, or the standby is off")],
                "{down:?}"
            );
        }
        let changed = Situation {
            launch_now: Some(&large),
            ..running
        };
        assert_eq!(
            check(&changed, &mut record, t0),
            vec![Act::DropStandby("the detector's settings changed")]
        );
        assert_eq!(
            record.not_before,
            Some(t0 + STANDBY_DELAY),
            "the next waits"
        );
    }

    #[test]
    fn short_of_memory_a_standby_is_dropped_and_none_starts() {
        let t0 = Instant::now();
        let small = launch("s");
        let mut record = StandbyRecord::default();
        let shed = Situation {
            standby: Some(&small),
            shed: Some("shed: memory"),
            ..settled(Duration::from_secs(60), &small)
        };
        assert_eq!(
            check(&shed, &mut record, t0),
            vec![Act::DropStandby("shed: memory")]
        );
        let gone = Situation {
            standby: None,
            ..shed
        };
        assert_eq!(check(&gone, &mut record, t0), vec![], "none starts");
        let back = Situation { shed: None, ..gone };
        assert_eq!(check(&back, &mut record, t0), vec![Act::StartStandby]);
    }

    #[test]
    fn only_a_loaded_connected_standby_of_the_same_settings_is_adopted() {
        let small = launch("s");
        let loaded = Standby {
            generation: 3,
            launch: small.clone(),
            ready_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(adoptable(&loaded, true, Some(&small)), Ok(()));
        assert!(
            adoptable(&loaded, false, Some(&small)).is_err(),
            "no hello yet"
        );
        assert_eq!(
            adoptable(&loaded, true, Some(&launch("l"))),
            Err("the detector's settings changed")
        );
        let loading = Standby {
            ready_after: None,
            ..loaded
        };
        assert!(adoptable(&loading, true, Some(&small)).is_err());
    }
}

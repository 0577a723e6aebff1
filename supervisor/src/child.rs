//! What oriond knows of one supervised process across its incarnations: its lifecycle (the
//! state machine of `lifecycle`), restarts, the last exit, its last report and its output.
//! The running incarnation itself (pid, start time, connection) is in `crate::registry`.

use std::time::{Duration, SystemTime};

use orion_protocol::status::{MqttCounters, ProcessStatus};
use orion_protocol::{CaptureStatus, DetectorStatus, ProcessName};

use crate::lifecycle::{Lifecycle, State};
use crate::logbuf::LogBuffer;
use crate::registry::Incarnation;

pub use orion_protocol::status::ExitInfo;

/// The last report a child sent about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Capture(CaptureStatus),
    Detector(Box<DetectorStatus>),
    /// orion-control's MQTT counters.
    Control(Box<MqttCounters>),
}

impl Report {
    pub fn capture(&self) -> Option<&CaptureStatus> {
        match self {
            Report::Capture(s) => Some(s),
            _ => None,
        }
    }

    pub fn detector(&self) -> Option<&DetectorStatus> {
        match self {
            Report::Detector(s) => Some(s),
            _ => None,
        }
    }

    pub fn control(&self) -> Option<&MqttCounters> {
        match self {
            Report::Control(s) => Some(s),
            _ => None,
        }
    }

    /// The reported state, as it shows in the status (a change of it is news).
    pub fn state(&self) -> &'static str {
        match self {
            Report::Capture(s) => s.state.as_str(),
            Report::Detector(s) => s.state.as_str(),
            Report::Control(s) if s.connected => "connected",
            Report::Control(_) => "disconnected",
        }
    }
}

pub struct Child {
    pub name: ProcessName,
    pub life: Lifecycle,
    /// The generation of the last incarnation: its lifecycle timers carry it, and a timer
    /// of an older one is stale.
    pub generation: u64,
    /// Restarts after the first start.
    pub restarts: u32,
    pub spawned_once: bool,
    pub last_exit: Option<ExitInfo>,
    /// It reported ready (and is being brought to the desired state).
    pub ready: bool,
    /// Desired-state commands sent and not yet acknowledged.
    pub applying: usize,
    /// The last status report it sent (capture or detector status).
    pub last_status: Option<Report>,
    pub log: LogBuffer,
}

impl Child {
    pub fn new(name: ProcessName, log_capacity: usize) -> Self {
        Self {
            name,
            life: Lifecycle::default(),
            generation: 0,
            restarts: 0,
            spawned_once: false,
            last_exit: None,
            ready: false,
            applying: 0,
            last_status: None,
            log: LogBuffer::new(log_capacity),
        }
    }

    pub fn state(&self) -> State {
        self.life.state
    }

    /// A new incarnation of `generation` runs (spawned, or an understudy adopted).
    pub fn spawned(&mut self, generation: u64) {
        if self.spawned_once {
            self.restarts += 1;
        }
        self.spawned_once = true;
        self.generation = generation;
        self.ready = false;
        self.applying = 0;
        self.last_status = None;
    }

    /// The incarnation ended.
    pub fn ended(&mut self, status: &str, reaped: SystemTime) {
        let micros = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64)
        };
        self.last_exit = Some(ExitInfo {
            at_unix_us: micros(SystemTime::now()),
            reaped_unix_us: micros(reaped),
            status: status.to_string(),
            expected: self.state() == State::Stopping,
        });
        self.ready = false;
        self.applying = 0;
    }

    /// supervisorctl's description column, for the incarnation running now (if any).
    fn description(&self, running: Option<(u32, Duration)>) -> String {
        match running {
            Some((pid, uptime)) if self.state().is_alive() => {
                let secs = uptime.as_secs();
                format!(
                    "pid {pid}, uptime {}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                )
            }
            _ => self.life.reason.clone().unwrap_or_default(),
        }
    }

    /// Its status, with `serving`, its incarnation running now (from the registry).
    pub fn status(&self, serving: Option<&Incarnation>) -> ProcessStatus {
        let running = serving
            .filter(|_| self.state().is_alive())
            .map(|inc| (inc.pid, inc.started.elapsed()));
        ProcessStatus {
            name: self.name,
            state: self.state(),
            pid: running.map(|(pid, _)| pid),
            uptime_s: running.map(|(_, up)| up.as_secs_f64()),
            restarts: self.restarts,
            retries: self.life.retries,
            description: self.description(running),
            last_exit: self.last_exit.clone(),
        }
    }
}

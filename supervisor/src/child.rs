//! What oriond knows of one supervised process: its lifecycle (the state machine of
//! `lifecycle`), the current incarnation (pid, generation, start time), its connection, its
//! last report and its output.

use std::time::{Instant, SystemTime};

use orion_protocol::status::ProcessStatus;
use orion_protocol::{CaptureStatus, DetectorStatus, ProcessName};

use crate::lifecycle::{Lifecycle, State};
use crate::logbuf::LogBuffer;

pub use orion_protocol::status::ExitInfo;

/// The last report a child sent about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Capture(CaptureStatus),
    Detector(Box<DetectorStatus>),
}

impl Report {
    pub fn capture(&self) -> Option<&CaptureStatus> {
        match self {
            Report::Capture(s) => Some(s),
            Report::Detector(_) => None,
        }
    }

    pub fn detector(&self) -> Option<&DetectorStatus> {
        match self {
            Report::Detector(s) => Some(s),
            Report::Capture(_) => None,
        }
    }

    /// The reported state, as it shows in the status (a change of it is news).
    pub fn state(&self) -> &'static str {
        match self {
            Report::Capture(s) => s.state.as_str(),
            Report::Detector(s) => s.state.as_str(),
        }
    }
}

pub struct Child {
    pub name: ProcessName,
    pub life: Lifecycle,
    pub pid: Option<u32>,
    /// Bumped at every spawn; events of an older generation are stale.
    pub generation: u64,
    pub started: Option<Instant>,
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
            pid: None,
            generation: 0,
            started: None,
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

    /// A new incarnation was spawned as `pid`.
    pub fn spawned(&mut self, pid: u32) {
        if self.spawned_once {
            self.restarts += 1;
        }
        self.spawned_once = true;
        self.pid = Some(pid);
        self.started = Some(Instant::now());
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
        self.pid = None;
        self.ready = false;
        self.applying = 0;
    }

    pub fn uptime_s(&self) -> Option<f64> {
        if self.state().is_alive() {
            self.started.map(|t| t.elapsed().as_secs_f64())
        } else {
            None
        }
    }

    /// supervisorctl's description column.
    pub fn description(&self) -> String {
        if self.state().is_alive() {
            let secs = self.uptime_s().unwrap_or(0.0) as u64;
            format!(
                "pid {}, uptime {}:{:02}:{:02}",
                self.pid.unwrap_or(0),
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )
        } else {
            self.life.reason.clone().unwrap_or_default()
        }
    }

    pub fn status(&self) -> ProcessStatus {
        ProcessStatus {
            name: self.name,
            state: self.state(),
            pid: self.pid,
            uptime_s: self.uptime_s(),
            restarts: self.restarts,
            retries: self.life.retries,
            description: self.description(),
            last_exit: self.last_exit.clone(),
        }
    }
}

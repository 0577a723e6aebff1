//! The children: how each is started (program and arguments from the config and the
//! desired state), the supervisord states it goes through, and the output kept for `tail`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use orion_config::Config;
use orion_process::ring_arg::RING_FD;
use orion_protocol::ProcessName;
use orion_ring::Access;
use serde::Serialize;
use serde_json::Value;

use crate::desired::Desired;

/// supervisord's process states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Fatal,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Backoff => "BACKOFF",
            State::Stopping => "STOPPING",
            State::Exited => "EXITED",
            State::Fatal => "FATAL",
        }
    }
}

/// What starting a child runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment: settings that may hold secrets (the camera URI's password) go here,
    /// not into the arguments every local user can read.
    pub env: Vec<(String, String)>,
    /// The frame ring, handed down at `orion_process::ring_arg::RING_FD` with this access.
    pub ring: Option<Access>,
    /// Files written (mode 0600) just before the start: the embedded broker's config.
    pub files: Vec<(PathBuf, String)>,
}

/// The directory of the child binaries: the config's `bin_dir`, else oriond's own.
pub fn bin_dir(config: &Config) -> PathBuf {
    config.supervisor.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("/usr/bin"))
    })
}

/// What starting `name` runs. Fails only if the camera's credentials file cannot be read.
pub fn spec(
    name: ProcessName,
    config: &Config,
    config_path: &Path,
    desired: &Desired,
) -> Result<Spec, String> {
    let bin = bin_dir(config);
    let s = |v: &dyn ToString| v.to_string();
    Ok(match name {
        ProcessName::Capture => Spec {
            program: bin.join("orion-capture"),
            args: vec![
                s(&"--ring-fd"),
                s(&RING_FD),
                s(&"--width"),
                s(&config.stream.width),
                s(&"--height"),
                s(&config.stream.height),
                s(&"--rate-hz"),
                s(&desired.rate_hz.hz()),
                s(&"--stall-timeout-s"),
                s(&config.stream.stall_timeout_s),
                s(&"--rtsp-transport"),
                config.camera.rtsp_transport.clone(),
            ],
            env: vec![(
                "ORION_CAMERA_SOURCE".into(),
                config.camera_uri().map_err(|e| e.to_string())?,
            )],
            ring: Some(Access::ReadWrite),
            files: Vec::new(),
        },
        ProcessName::Detector => {
            let d = &config.detector;
            let mut args = vec![
                s(&"--ring-fd"),
                s(&RING_FD),
                s(&"--instance-id"),
                config.instance_id.clone(),
                s(&"--room-id"),
                config.room_id.clone(),
                s(&"--model-dir"),
                d.model_dir.to_string_lossy().into_owned(),
                s(&"--size"),
                s(&desired.model_size),
                s(&"--python"),
                d.python.to_string_lossy().into_owned(),
                s(&"--threads"),
                s(&d.intra_op_threads),
                s(&"--classes"),
                d.classes.join(","),
                s(&"--confidence"),
                s(&d.confidence),
                s(&"--iou"),
                s(&d.iou),
                s(&"--threshold-320"),
                s(&d.threshold_320),
                s(&"--worker-timeout-s"),
                s(&d.worker_timeout_s),
                s(&"--auto-focus-strategy"),
                serde_json::to_value(desired.auto_focus_params.strategy)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "smoothing".into()),
            ];
            if let Some(dir) = &d.worker_dir {
                args.extend([s(&"--worker-dir"), dir.to_string_lossy().into_owned()]);
            }
            if desired.auto_focus {
                args.push(s(&"--auto-focus"));
            }
            // Nothing is inferred before the desired state is re-applied (then resumed).
            args.push(s(&"--paused"));
            Spec {
                program: bin.join("orion-detector"),
                args,
                env: Vec::new(),
                ring: Some(Access::ReadOnly),
                files: Vec::new(),
            }
        }
        ProcessName::Control => Spec {
            program: bin.join("orion-control"),
            args: vec![s(&"--config"), config_path.to_string_lossy().into_owned()],
            env: Vec::new(),
            ring: None,
            files: Vec::new(),
        },
        ProcessName::Broker => {
            let conf = config
                .supervisor
                .state_dir
                .join(format!("mosquitto-{}.conf", config.instance_id));
            Spec {
                program: config.mqtt.broker_program.clone(),
                args: vec![s(&"-c"), conf.to_string_lossy().into_owned()],
                env: Vec::new(),
                ring: None,
                files: vec![(conf, broker_conf(config))],
            }
        }
    })
}

/// The embedded broker's mosquitto config (ADR 0006): localhost only, anonymous local
/// clients, Nagle off so an ack never waits for a client's delayed TCP ACK, sessions kept
/// in memory (persistent sessions survive orion-control restarts, not broker restarts).
fn broker_conf(config: &Config) -> String {
    let m = &config.mqtt;
    // Run as root (the demo), mosquitto would switch to user mosquitto, which clears the
    // parent-death signal that takes it down with oriond; stay root there.
    let user = if nix::unistd::geteuid().is_root() {
        "user root\n"
    } else {
        ""
    };
    format!(
        "# Written by oriond at every start of the embedded broker (mqtt.embedded).\n\
         listener {port} {host}\n\
         allow_anonymous true\n\
         set_tcp_nodelay true\n\
         persistence false\n\
         max_queued_messages 1000\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         log_timestamp false\n\
         {user}",
        port = m.port,
        host = m.host,
    )
}

/// True for the broker's line saying it listens (mosquitto logs it at notice level).
pub fn broker_ready_line(line: &str) -> bool {
    line.starts_with("mosquitto version") && line.trim_end().ends_with(" running")
}

/// How a child ended.
#[derive(Debug, Clone, Serialize)]
pub struct ExitInfo {
    /// When oriond's supervisor acted on the exit (state change), µs since the Unix epoch.
    pub at_unix_us: u64,
    /// When the reaper task collected the exit status, µs since the Unix epoch.
    pub reaped_unix_us: u64,
    /// `exit 1`, `signal 9 (SIGKILL)`.
    pub status: String,
    pub expected: bool,
}

/// Bounded output of one child, with absolute byte offsets so `tail -f` can follow it.
pub struct LogBuffer {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Offset of the byte after the newest one.
    end: u64,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            end: 0,
        }
    }

    pub fn push_line(&mut self, line: &str) {
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            if self.bytes.len() == self.capacity {
                self.bytes.pop_front();
            }
            self.bytes.push_back(b);
        }
        self.end += line.len() as u64 + 1;
    }

    /// Up to `max` bytes starting at `from` (clamped to what is kept); without `from`, the
    /// last `max` bytes. Returns the text and the offset to continue from.
    pub fn read(&self, from: Option<u64>, max: usize) -> (String, u64) {
        let start_kept = self.end - self.bytes.len() as u64;
        let from = match from {
            Some(f) => f.clamp(start_kept, self.end),
            None => self.end.saturating_sub(max as u64).max(start_kept),
        };
        let skip = (from - start_kept) as usize;
        let take = max.min(self.bytes.len() - skip);
        let chunk: Vec<u8> = self.bytes.iter().skip(skip).take(take).copied().collect();
        (
            String::from_utf8_lossy(&chunk).into_owned(),
            from + take as u64,
        )
    }
}

/// One supervised process.
pub struct Child {
    pub name: ProcessName,
    pub state: State,
    pub pid: Option<u32>,
    /// Bumped at every spawn; events of an older generation are stale.
    pub generation: u64,
    pub started: Option<(Instant, SystemTime)>,
    /// Failed starts in a row.
    pub retries: u32,
    /// Restarts after the first start.
    pub restarts: u32,
    pub spawned_once: bool,
    /// Why it is in BACKOFF or FATAL, or why it last exited.
    pub reason: Option<String>,
    pub last_exit: Option<ExitInfo>,
    /// Its connection to oriond's socket, once it said hello.
    pub conn: Option<u64>,
    /// It reported ready (and is being brought to the desired state).
    pub ready: bool,
    /// Desired-state commands sent and not yet acknowledged.
    pub applying: usize,
    /// The last status message it sent (capture_status / detector_status).
    pub last_status: Option<Value>,
    pub log: LogBuffer,
}

impl Child {
    pub fn new(name: ProcessName, log_capacity: usize) -> Self {
        Self {
            name,
            state: State::Stopped,
            pid: None,
            generation: 0,
            started: None,
            retries: 0,
            restarts: 0,
            spawned_once: false,
            reason: None,
            last_exit: None,
            conn: None,
            ready: false,
            applying: 0,
            last_status: None,
            log: LogBuffer::new(log_capacity),
        }
    }

    pub fn uptime_s(&self) -> Option<f64> {
        match self.state {
            State::Running | State::Starting | State::Stopping => {
                self.started.map(|(t, _)| t.elapsed().as_secs_f64())
            }
            _ => None,
        }
    }

    /// supervisorctl's description column.
    pub fn description(&self) -> String {
        match self.state {
            State::Running | State::Starting | State::Stopping => {
                let secs = self.uptime_s().unwrap_or(0.0) as u64;
                format!(
                    "pid {}, uptime {}:{:02}:{:02}",
                    self.pid.unwrap_or(0),
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                )
            }
            _ => self.reason.clone().unwrap_or_default(),
        }
    }

    pub fn status(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "uptime_s": self.uptime_s(),
            "restarts": self.restarts,
            "retries": self.retries,
            "description": self.description(),
            "last_exit": self.last_exit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buffer_keeps_the_newest_bytes_with_offsets() {
        let mut log = LogBuffer::new(10);
        log.push_line("abc");
        assert_eq!(log.read(None, 100), ("abc\n".into(), 4));
        log.push_line("0123456789");
        // 15 bytes written, the last 10 kept.
        let (text, end) = log.read(None, 100);
        assert_eq!((text.as_str(), end), ("123456789\n", 15));
        assert_eq!(log.read(Some(13), 100), ("9\n".into(), 15));
        assert_eq!(log.read(Some(0), 3), ("123".into(), 8));
        assert_eq!(log.read(Some(15), 3), (String::new(), 15));
    }
}

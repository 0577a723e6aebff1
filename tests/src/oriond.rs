//! A real oriond for tests and benchmarks: its own config, socket, state directory and ring
//! (a unique instance id), the workspace's real children, and a client for its socket.
//! Dropping it stops oriond (SIGTERM, then SIGKILL) and removes its directory.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use orion_protocol::command::Ack;
use orion_protocol::wire;
use serde_json::{Value, json};

use crate::child::ChildGuard;
use crate::{bins, fixtures};

pub struct Oriond {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub instance: String,
    /// Extra environment for oriond (e.g. `NOTIFY_SOCKET`).
    pub env: Vec<(String, String)>,
    guard: Option<ChildGuard>,
}

/// How long a whole start (worker model load included) may take in a test.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

impl Oriond {
    /// A config for a test instance: synthetic models, `test://ball` at 320x240 and 5 Hz,
    /// short backoffs, MQTT on a broker at `127.0.0.1:{mqtt_port}` or off; `extra` is
    /// appended (keys of a table already present go in with their table).
    pub fn config_text(
        instance: &str,
        dir: &Path,
        mqtt_port: Option<u16>,
        extra: &str,
    ) -> Result<String> {
        let mqtt = match mqtt_port {
            None => "enabled = false".to_string(),
            Some(port) => format!("host = \"127.0.0.1\"\nport = {port}\nstatus_interval_s = 2"),
        };
        Ok(format!(
            r#"instance_id = "{instance}"
room_id = "test-room"
[camera]
source = "test://ball"
[stream]
width = 320
height = 240
rate_hz = 5
[detector]
model_dir = "{models}"
intra_op_threads = 1
{runtime}
[mqtt]
{mqtt}
{extra}
"#,
            models = fixtures::fixture("models/synthetic")?.display(),
            runtime = runtime_sections(dir)?,
        ))
    }

    /// Starts oriond on the test config with a camera nobody answers (the capture runs, its
    /// stream does not), without waiting for its children.
    pub fn start_without_camera() -> Result<Self> {
        let (instance, dir) = Self::scratch()?;
        let text = Self::config_text(&instance, &dir, None, "")?.replace(
            "source = \"test://ball\"",
            "source = \"rtsp://127.0.0.1:9/nothing\"",
        );
        Self::start_with(instance, dir, &text)
    }

    /// A fresh directory and instance id.
    pub fn scratch() -> Result<(String, PathBuf)> {
        static N: AtomicU32 = AtomicU32::new(0);
        let instance = format!(
            "t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("orion-{instance}"));
        std::fs::create_dir_all(&dir)?;
        Ok((instance, dir))
    }

    /// Starts oriond with the test config plus `extra`, and waits until every managed
    /// process is RUNNING.
    pub fn start(mqtt_port: Option<u16>, extra: &str) -> Result<Self> {
        let (instance, dir) = Self::scratch()?;
        let text = Self::config_text(&instance, &dir, mqtt_port, extra)?;
        let o = Self::start_with(instance, dir, &text)?;
        o.wait_all_running(START_TIMEOUT)?;
        Ok(o)
    }

    /// Starts oriond on a config text without waiting for its children.
    pub fn start_with(instance: String, dir: PathBuf, text: &str) -> Result<Self> {
        Self::start_with_env(instance, dir, text, Vec::new())
    }

    /// ...with these variables in its environment.
    pub fn start_with_env(
        instance: String,
        dir: PathBuf,
        text: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self> {
        let config = dir.join("orion.toml");
        std::fs::write(&config, text)?;
        let socket = dir.join("run").join(format!("oriond-{instance}.sock"));
        let mut o = Self {
            dir,
            config,
            socket,
            instance,
            env,
            guard: None,
        };
        o.spawn()?;
        Ok(o)
    }

    /// (Re)starts the oriond process on the same config and directory.
    pub fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(bins::locate("oriond")?);
        cmd.arg("--config").arg(&self.config);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.guard = Some(ChildGuard::spawn(cmd)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(g) = self.guard.as_mut()
                && !g.is_running()
            {
                bail!("oriond exited: {}", g.stderr_text());
            }
            if Instant::now() > deadline {
                bail!("oriond's socket did not appear");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.guard.as_ref().map_or(0, ChildGuard::pid)
    }

    pub fn stderr_text(&self) -> String {
        self.guard
            .as_ref()
            .map(ChildGuard::stderr_text)
            .unwrap_or_default()
    }

    /// Sends a signal to oriond and waits for it to exit.
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) -> Result<std::process::ExitStatus> {
        self.guard
            .take()
            .context("oriond not running")?
            .signal(signal)
    }

    /// Waits up to `timeout` for oriond to exit on its own; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let guard = self.guard.as_mut().context("oriond not running")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = guard.exit_status() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("oriond still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// One request on a fresh connection; its ack.
    pub fn request(&self, body: &Value) -> Result<Ack> {
        let mut stream = UnixStream::connect(&self.socket).context("connect to oriond")?;
        stream.set_read_timeout(Some(Duration::from_secs(200)))?;
        wire::write_message(&mut stream, body.to_string().as_bytes())?;
        let reply = wire::read_message(&mut stream)?.context("oriond closed without answering")?;
        Ok(serde_json::from_slice(&reply)?)
    }

    /// `command` with `params`; the ack.
    pub fn command(&self, command: &str, params: Value) -> Result<Ack> {
        self.request(&json!({"command": command, "params": params, "request_id": "test"}))
    }

    pub fn status(&self) -> Result<Value> {
        self.command("get_status", json!({}))?
            .into_result()
            .map_err(anyhow::Error::msg)
    }

    pub fn process(&self, name: &str) -> Result<Value> {
        let status = self.status()?;
        status["processes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .with_context(|| format!("no process {name} in {status}"))
    }

    pub fn child_pid(&self, name: &str) -> Result<u32> {
        self.process(name)?["pid"]
            .as_u64()
            .map(|p| p as u32)
            .with_context(|| format!("{name} has no pid"))
    }

    /// Waits until child `name` has been RUNNING for `secs` (past `startsecs`: a kill now
    /// is a crash, not a failed start).
    pub fn wait_up(&self, name: &str, secs: f64, timeout: Duration) -> Result<Value> {
        self.wait_for(&format!("{name} up {secs} s"), timeout, |s| {
            s["processes"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| {
                    p["name"] == name
                        && p["state"] == "RUNNING"
                        && p["uptime_s"].as_f64().unwrap_or(0.0) >= secs
                })
            })
        })
    }

    /// Polls until `check` accepts the status.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status()?;
            if check(&status) {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}; last status {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the detector's warm spare worker is loaded (a model change then goes
    /// through it, and a worker crash is taken over by it).
    pub fn wait_spare_ready(&self, timeout: Duration) -> Result<Value> {
        self.wait_for("the spare worker ready", timeout, |s| {
            s["detector"]["spare_worker_ready"] == true
        })
    }

    /// Waits until oriond's standby detector is loaded (a detector crash is then taken
    /// over by it).
    pub fn wait_standby_ready(&self, timeout: Duration) -> Result<Value> {
        self.wait_for("the standby detector loaded", timeout, |s| {
            s["detector_standby"]["current"]["ready"] == true
        })
    }

    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Result<Value> {
        self.wait_for(&format!("{name} {state}"), timeout, |s| {
            s["processes"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["state"] == state))
        })
    }

    pub fn wait_all_running(&self, timeout: Duration) -> Result<Value> {
        self.wait_for("every process RUNNING", timeout, |s| {
            s["processes"]
                .as_array()
                .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["state"] == "RUNNING"))
        })
    }

    /// Waits until every process is RUNNING and doing its work: frames flowing, the
    /// detector inferring (what `orionctl status` exits 0 for).
    pub fn wait_working(&self, timeout: Duration) -> Result<Value> {
        self.wait_for("every process RUNNING and working", timeout, |s| {
            s["processes"]
                .as_array()
                .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["state"] == "RUNNING"))
                && s["stream"]["state"] == "running"
                && s["detector"]["state"] == "running"
        })
    }

    /// Runs `orionctl --config … args`; (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = Command::new(bins::locate("orionctl")?)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Drop for Oriond {
    fn drop(&mut self) {
        drop(self.guard.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The config lines every test instance shares: the venv's Python and the worker package
/// (in `[detector]`, which they continue), then `[supervisor]` with the instance's own
/// socket and state directories in `dir`, the workspace's binaries, short timings.
pub fn runtime_sections(dir: &Path) -> Result<String> {
    let bin_dir = bins::oriond_bin_dir()?;
    Ok(format!(
        r#"python = "{python}"
worker_dir = "{worker}"
[supervisor]
socket_dir = "{dir}/run"
state_dir = "{dir}/state"
bin_dir = "{bin_dir}"
startsecs = 0.5
backoff_initial_s = 0.1
backoff_max_s = 1.0
stopwaitsecs = 3"#,
        python = fixtures::python()?.display(),
        worker = fixtures::repo().join("python").display(),
        dir = dir.display(),
        bin_dir = bin_dir.display(),
    ))
}

/// Now on the realtime clock, in µs since the epoch: what oriond stamps a child's exit
/// with (`last_exit.at_unix_us`).
pub fn now_unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Whether `pid` is gone (or a zombie nobody reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // Field 3 is the state; the command name in field 2 is parenthesized.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The live (not zombie) children of `parent` whose command name is `comm`.
pub fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map_or("", |(_, n)| n);
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            name == comm && state != "Z" && ppid == Some(parent)
        })
        .collect()
}

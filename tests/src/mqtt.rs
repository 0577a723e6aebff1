//! A real mosquitto broker on a free localhost port, and a watcher that records every
//! message on a topic filter through `mosquitto_sub` (the Debian clients), so tests see
//! the MQTT traffic exactly as an operator's tools would.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::child::ChildGuard;

pub struct Mosquitto {
    pub port: u16,
    /// Broker-side TCP_NODELAY (mosquitto's `set_tcp_nodelay`, off by default).
    pub nodelay: bool,
    /// Config lines after the listener (`allow_anonymous true` unless given).
    extra: String,
    guard: Option<ChildGuard>,
}

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Mosquitto {
    /// mosquitto as Debian ships it (Nagle on), on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    pub fn start_with(nodelay: bool) -> Result<Self> {
        let mut m = Self {
            port: free_port()?,
            nodelay,
            extra: "allow_anonymous true\n".into(),
            guard: None,
        };
        m.restart()?;
        Ok(m)
    }

    /// With `conf` after the listener line (password file, ACL, logging), Nagle off.
    pub fn start_conf(conf: &str) -> Result<Self> {
        let mut m = Self {
            port: free_port()?,
            nodelay: true,
            extra: conf.to_string(),
            guard: None,
        };
        m.restart()?;
        Ok(m)
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(ChildGuard::pid)
    }

    /// What the broker logged so far (with `log_dest stderr`).
    pub fn log(&self) -> String {
        self.guard
            .as_ref()
            .map(ChildGuard::stderr_text)
            .unwrap_or_default()
    }

    /// Starts (again) on the same port.
    pub fn restart(&mut self) -> Result<()> {
        let conf = std::env::temp_dir().join(format!("orion-mosquitto-{}.conf", self.port));
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nset_tcp_nodelay {}\n{}",
                self.port, self.nodelay, self.extra
            ),
        )?;
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c").arg(&conf);
        let started = self.spawn_and_wait(cmd);
        // mosquitto has read its config once it listens (or it failed): nothing is left.
        let _ = std::fs::remove_file(&conf);
        started
    }

    fn spawn_and_wait(&mut self, cmd: Command) -> Result<()> {
        self.guard =
            Some(ChildGuard::spawn(cmd).context("start mosquitto (apt install mosquitto)")?);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// SIGKILLs the broker (it keeps nothing: no persistence).
    pub fn kill(&mut self) -> Result<()> {
        self.guard.take().context("not running")?.kill()
    }
}

/// One message seen by a [`Watch`].
#[derive(Debug, Clone)]
pub struct Seen {
    pub topic: String,
    pub retained: bool,
    /// MQTT 5 correlation data (empty if none).
    pub correlation: String,
    pub payload: String,
}

impl Seen {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.payload).ok()
    }
}

/// `mosquitto_sub -V mqttv5` on a topic filter; messages are kept in arrival order.
pub struct Watch {
    guard: ChildGuard,
    pub seen: Vec<Seen>,
}

impl Watch {
    pub fn start(port: u16, filter: &str) -> Result<Self> {
        Self::start_with(port, filter, true)
    }

    /// `v5: false` subscribes with MQTT 3.1.1 (the embedded broker speaks only that).
    pub fn start_with(port: u16, filter: &str, v5: bool) -> Result<Self> {
        // A private probe topic besides the filter: once a probe comes back, the
        // subscription is in place (mosquitto_sub itself says nothing).
        let probe = format!("orion-probe/{}-{}", std::process::id(), crate::unique());
        Self::start_as(port, filter, v5, None, &probe)
    }

    /// As a broker user (`auth`: user name and password), proving the subscription with
    /// messages on `probe` (a topic that user may publish and read).
    pub fn start_as(
        port: u16,
        filter: &str,
        v5: bool,
        auth: Option<(&str, &str)>,
        probe: &str,
    ) -> Result<Self> {
        let probe = probe.to_string();
        let mut cmd = Command::new("mosquitto_sub");
        let version = if v5 { "mqttv5" } else { "mqttv311" };
        if let Some((user, password)) = auth {
            cmd.args(["-u", user, "-P", password]);
        }
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            version,
            "-q",
            "1",
        ])
        .args(["-t", filter, "-t", &probe, "-F", "%t\t%r\t%D\t%p"]);
        let guard = ChildGuard::spawn(cmd)?;
        let mut watch = Self {
            guard,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            publish_as(port, auth, &probe, "probe")?;
            if watch
                .wait_for("the subscription probe", Duration::from_millis(300), |s| {
                    s.topic == probe
                })
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("mosquitto_sub did not subscribe within 10 s");
            }
        }
        watch.seen.retain(|s| s.topic != probe);
        Ok(watch)
    }

    fn pull(&mut self, timeout: Duration) -> Result<bool> {
        match self.guard.next_line_within(timeout)? {
            Some(line) => {
                let mut parts = line.splitn(4, '\t');
                let seen = Seen {
                    topic: parts.next().unwrap_or_default().to_string(),
                    retained: parts.next() == Some("1"),
                    correlation: parts.next().unwrap_or_default().to_string(),
                    payload: parts.next().unwrap_or_default().to_string(),
                };
                self.seen.push(seen);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The first message (already seen or arriving within `timeout`) that `check` accepts.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Seen) -> bool,
    ) -> Result<Seen> {
        let deadline = Instant::now() + timeout;
        let mut from = 0;
        loop {
            if let Some(s) = self.seen[from..].iter().find(|s| check(s)) {
                return Ok(s.clone());
            }
            from = self.seen.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no message for {what} within {timeout:?}; saw {} messages",
                    self.seen.len()
                );
            }
            self.pull(left.min(Duration::from_millis(200)))?;
        }
    }

    /// Waits until `n` messages from index `from` on (of `seen`) satisfy `check`.
    pub fn wait_count(
        &mut self,
        what: &str,
        timeout: Duration,
        from: usize,
        n: usize,
        mut check: impl FnMut(&Seen) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.seen[from.min(self.seen.len())..]
                .iter()
                .filter(|s| check(s))
                .count();
            if count >= n {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{count} of {n} messages for {what} within {timeout:?}");
            }
            self.pull(left.min(Duration::from_millis(200)))?;
        }
    }

    /// Forgets what was seen so far.
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// `mosquitto_pub` of `payload` to `topic` as a broker user (MQTT 3.1.1). A publish the
/// broker refuses still succeeds here: MQTT 3.1.1 has no way to say so.
pub fn publish_as(port: u16, auth: Option<(&str, &str)>, topic: &str, payload: &str) -> Result<()> {
    let mut cmd = Command::new("mosquitto_pub");
    if let Some((user, password)) = auth {
        cmd.args(["-u", user, "-P", password]);
    }
    let status = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", payload])
        .status()?;
    anyhow::ensure!(status.success(), "mosquitto_pub failed");
    Ok(())
}

/// `mosquitto_pub` of `payload` to `topic` (MQTT 3.1.1 unless `v5_props` are given).
pub fn publish(port: u16, topic: &str, payload: &str, v5_props: &[(&str, &str)]) -> Result<()> {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ]);
    if !v5_props.is_empty() {
        cmd.args(["-V", "mqttv5"]);
        for (name, value) in v5_props {
            cmd.args(["-D", "publish", name, value]);
        }
    }
    if payload.len() > 100_000 {
        // Too long for an argument list: from a file.
        let file = std::env::temp_dir().join(format!("orion-payload-{}", std::process::id()));
        std::fs::write(&file, payload)?;
        cmd.arg("-f").arg(&file);
        let status = cmd.status()?;
        let _ = std::fs::remove_file(&file);
        anyhow::ensure!(status.success(), "mosquitto_pub failed");
        return Ok(());
    }
    let status = cmd.args(["-m", payload]).status()?;
    anyhow::ensure!(status.success(), "mosquitto_pub failed");
    Ok(())
}

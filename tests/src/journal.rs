//! A real systemd-journald for tests of what oriond writes to the journal, and `journalctl`
//! to read it. Where a journald already runs (a developer's box), that one is used and left
//! alone; where none does (CI's container: no systemd as PID 1), Debian's
//! `/lib/systemd/systemd-journald` is started standalone (it creates its sockets itself)
//! and stopped when dropped, and the directories it made are removed again.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::child::ChildGuard;

const SOCKET: &str = "/run/systemd/journal/socket";
const JOURNALD: &str = "/lib/systemd/systemd-journald";

pub struct Journald {
    /// Ours to stop; `None` when the box's own journald is used.
    own: Option<ChildGuard>,
    /// Directories that did not exist before ours made them.
    made: Vec<&'static str>,
}

impl Journald {
    pub fn start() -> Result<Self> {
        if listening() {
            return Ok(Self {
                own: None,
                made: Vec::new(),
            });
        }
        ensure!(
            nix::unistd::geteuid().is_root(),
            "no journald runs and only root can start one (run the tests as root, as CI does)"
        );
        ensure!(
            Path::new(JOURNALD).exists(),
            "{JOURNALD} is missing: apt install systemd"
        );
        let made = ["/run/systemd/journal", "/run/log/journal", "/run/log"]
            .into_iter()
            .filter(|d| !Path::new(d).exists())
            .collect();
        let own = ChildGuard::spawn(Command::new(JOURNALD))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening() {
            if Instant::now() > deadline {
                bail!("journald did not open {SOCKET}: {}", own.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            own: Some(own),
            made,
        })
    }

    /// Every entry `pid` wrote, as journalctl's JSON objects.
    pub fn entries_of(&self, pid: u32) -> Result<Vec<Value>> {
        let out = Command::new("journalctl")
            .args(["--no-pager", "-o", "json", "--all"])
            .arg(format!("_PID={pid}"))
            .output()
            .context("run journalctl")?;
        ensure!(
            out.status.success(),
            "journalctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("journalctl printed a line that is not JSON"))
            .collect()
    }
}

/// Whether a journald answers on its socket (a file left by a stopped one does not).
fn listening() -> bool {
    UnixDatagram::unbound()
        .and_then(|s| s.connect(SOCKET))
        .is_ok()
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(own) = self.own.take() {
            drop(own);
            for dir in &self.made {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

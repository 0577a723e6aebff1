//! oriond adopts its children's orphans (PR_SET_CHILD_SUBREAPER) and reaps them. A Python
//! worker whose bridge was killed is otherwise handed to PID 1, which in a container may
//! never reap it: a zombie of the orion user stays behind for good.
//!
//! oriond's own children are reaped by tokio, which waits for each by pid. This module
//! reaps only the processes tokio does not own ([`Owned`] marks the others), so neither
//! takes the other's exit status.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// Pids of the children oriond started itself (tokio waits for them).
static OWNED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Marks one child as oriond's own until dropped (after tokio waited for it).
#[derive(Debug)]
pub struct Owned(i32);

impl Owned {
    /// Marks `pid`; call it right after the spawn, before the runtime can run the reaper.
    pub fn new(pid: u32) -> Self {
        let pid = pid as i32;
        owned().insert(pid);
        Owned(pid)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        owned().remove(&self.0);
    }
}

fn owned() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    OWNED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes oriond the reaper of its descendants' orphans and reaps them on every SIGCHLD.
pub fn adopt() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).context("become the children's subreaper")?;
    let mut child = signal(SignalKind::child()).context("SIGCHLD handler")?;
    tokio::spawn(async move {
        while child.recv().await.is_some() {
            reap();
        }
    });
    Ok(())
}

/// Reaps every adopted orphan that has ended; the number reaped.
pub fn reap() -> usize {
    let mut reaped = 0;
    for pid in adopted() {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => {}
            Ok(status) => {
                tracing::info!(
                    pid,
                    ?status,
                    "reaped an orphan (a child's child that outlived its parent)"
                );
                reaped += 1;
            }
        }
    }
    reaped
}

/// At shutdown, after every child stopped: gives the orphans still alive `grace` to end
/// (they die with their parents, PR_SET_PDEATHSIG), then kills the rest, so oriond leaves
/// no process behind. The number killed.
pub async fn reap_remaining(grace: Duration) -> usize {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap();
        if adopted().is_empty() {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = adopted();
    for &pid in &left {
        tracing::warn!(pid, "an orphan outlived oriond's shutdown; killing it");
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
    }
    left.len()
}

/// oriond's children that it did not start itself: orphans it adopted.
fn adopted() -> Vec<i32> {
    let me = std::process::id() as i32;
    let owned = owned().clone();
    crate::lineage::children_of(me)
        .into_iter()
        .filter(|pid| !owned.contains(pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_children_are_not_adopted_orphans() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let pid = child.id() as i32;
        assert!(
            adopted().contains(&pid),
            "an unmarked child counts as adopted"
        );
        let owned = Owned::new(child.id());
        assert!(!adopted().contains(&pid), "a marked child is oriond's own");
        drop(owned);
        let _ = child.kill();
        let _ = child.wait();
    }
}

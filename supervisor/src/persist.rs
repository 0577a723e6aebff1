//! Saving oriond's state off the supervisor's loop: the desired state, and the MQTT commands
//! answered lately (`crate::dedupe`, so a command the broker redelivers after an oriond
//! restart is still answered, not applied again). The loop hands over a snapshot and goes
//! on (the ack is already on its way); a task writes each file atomically (temp file, fsync,
//! rename, fsync of the directory), at most about once a second, always the newest
//! snapshot. A crash loses at most the last second of changes, never tears a file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use orion_config::Config;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use orion_protocol::event::CareEvent;

use crate::dedupe::Record;
use crate::desired::Desired;

/// Least time between two writes.
const COALESCE: Duration = Duration::from_secs(1);

/// What to write: the state and the config it is saved against, and the answered commands.
#[derive(Clone)]
struct Snapshot {
    desired: (PathBuf, Desired, Config),
    answered: (PathBuf, Vec<Record>),
    events: (PathBuf, Vec<CareEvent>),
}

pub struct Persister {
    tx: watch::Sender<Option<Snapshot>>,
    task: JoinHandle<()>,
}

impl Persister {
    pub fn start() -> Self {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(run(rx));
        Self { tx, task }
    }

    /// Schedules `desired`, `answered` and the open care events to be saved; returns at
    /// once.
    pub fn save(
        &self,
        desired: &Desired,
        answered: Vec<Record>,
        open_events: Vec<CareEvent>,
        config: &Config,
    ) {
        let dir = &config.supervisor.state_dir;
        let _ = self.tx.send(Some(Snapshot {
            desired: (config.state_path(), desired.clone(), config.clone()),
            answered: (config.instance_id.answered_path(dir), answered),
            events: (config.instance_id.events_path(dir), open_events),
        }));
    }

    /// Writes what is still pending and stops.
    pub async fn flush(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

async fn run(mut rx: watch::Receiver<Option<Snapshot>>) {
    loop {
        let closed = rx.changed().await.is_err();
        let snapshot = rx.borrow_and_update().clone();
        if let Some(s) = snapshot {
            let written = tokio::task::spawn_blocking(move || {
                let (path, desired, config) = &s.desired;
                crate::desired::save(desired, path, config)
                    .context("cannot save the desired state")?;
                let (path, records) = &s.answered;
                crate::dedupe::save(path, records).context("cannot save the answered commands")?;
                let (path, open) = &s.events;
                crate::open_events::save(path, open).context("cannot save the open events")
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "saving the state"),
                Err(e) => tracing::error!(error = %e, "the state writer failed"),
            }
        }
        if closed {
            return;
        }
        // Changes arriving meanwhile wait and are written together, newest wins.
        tokio::time::sleep(COALESCE).await;
    }
}

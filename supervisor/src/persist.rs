//! Saving the desired state off the supervisor's loop: the loop hands over a snapshot and
//! goes on (the ack is already on its way); a task writes it atomically (temp file, fsync,
//! rename, fsync of the directory), at most about once a second, always the newest
//! snapshot. A crash loses at most the last second of changes, never tears the file.

use std::path::PathBuf;
use std::time::Duration;

use orion_config::Config;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::desired::Desired;

/// Least time between two writes.
const COALESCE: Duration = Duration::from_secs(1);

/// One thing to write: the state, and the config it is saved against.
type Snapshot = (PathBuf, Desired, Config);

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

    /// Schedules `desired` to be saved; returns at once.
    pub fn save(&self, desired: &Desired, config: &Config) {
        let _ = self
            .tx
            .send(Some((config.state_path(), desired.clone(), config.clone())));
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
        if let Some((path, desired, config)) = snapshot {
            let written = tokio::task::spawn_blocking(move || desired.save(&path, &config)).await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = format!("{e:#}"), "cannot save the desired state")
                }
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

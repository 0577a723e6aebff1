//! oriond's Unix socket: accepts connections (children and clients such as orionctl and
//! orion-control), reads framed messages ([`orion_protocol::wire`]: 4-byte big-endian
//! length, JSON body) into the supervisor's event queue and writes its replies. Oversize
//! messages close the connection after an error; nothing a peer sends can stop oriond.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use orion_protocol::wire::{WireError, nonblocking as wire};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::supervisor::Event;

/// Messages queued to one peer before it counts as stuck and is dropped.
const OUTBOX: usize = 1024;
/// Connections at once (children and clients).
pub const MAX_CONNECTIONS: usize = 64;

/// A connection's outbox.
pub type Outbox = mpsc::Sender<Vec<u8>>;

/// Binds `path` (0660), replacing a stale socket; fails if another oriond answers on it.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "another oriond is running on {} (stop it first)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("remove stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

pub fn spawn_accept(listener: UnixListener, events: mpsc::UnboundedSender<Event>) {
    tokio::spawn(async move {
        let mut next_id = 1u64;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let id = next_id;
            next_id += 1;
            let peer_pid = stream
                .peer_cred()
                .ok()
                .and_then(|c| c.pid())
                .and_then(|p| u32::try_from(p).ok());
            let (reader, writer) = stream.into_split();
            let (tx, rx) = mpsc::channel(OUTBOX);
            tokio::spawn(write_loop(writer, rx));
            if events
                .send(Event::Accepted {
                    conn: id,
                    outbox: tx,
                    peer_pid,
                })
                .is_err()
            {
                return;
            }
            tokio::spawn(read_loop(reader, id, events.clone()));
        }
    });
}

async fn read_loop(
    mut reader: tokio::net::unix::OwnedReadHalf,
    conn: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    let why = loop {
        match wire::read_message(&mut reader).await {
            Ok(Some(body)) => {
                if events.send(Event::Message { conn, body }).is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(e @ WireError::TooLarge { .. }) => break Some(e.to_string()),
            Err(WireError::Io(_)) => break None,
        }
    };
    let _ = events.send(Event::Closed { conn, why });
}

async fn write_loop(mut writer: tokio::net::unix::OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(body) = rx.recv().await {
        if wire::write_message(&mut writer, &body).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

//! oriond's Unix socket, and the whole life of each connection on it: accepted within
//! [`MAX_CONNECTIONS`] for clients and [`CHILD_SLOTS`] apart for oriond's own processes, so
//! idle clients can never keep a restarted child out (beyond its limit a connection is
//! answered with an error and closed before any task exists for it), framed messages read ([`orion_protocol::wire`]) into
//! [`Event::Frame`], replies written from the connection's outbox. When the supervisor lets
//! go of a connection (drops its outbox: a refused hello, a peer that does not read) the
//! writer closes it and the reader stops at once, so nothing it sends afterwards reaches
//! the supervisor.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use orion_protocol::command::{Ack, AckError, ErrorKind};
use orion_protocol::message::{self, Message};
use orion_protocol::wire::{WireError, nonblocking as wire};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use crate::events::{ConnId, Event, Events};

/// Messages, and bytes, queued to one peer before it counts as stuck and is let go.
const OUTBOX: usize = 1024;
/// Room for a snapshot (the largest message) and the messages around it.
const OUTBOX_BYTES: usize = orion_protocol::wire::MAX_FROM_ORIOND + (4 << 20);
/// Client connections at once (orionctl, scripts: processes oriond did not start).
pub const MAX_CONNECTIONS: usize = 64;
/// Connections at once from processes oriond started: control, detector, capture, a
/// capture successor, a standby detector, and room to spare.
pub const CHILD_SLOTS: usize = 16;

/// Binds `path` (0660), replacing a stale socket; fails if another oriond answers on it.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        socket_dir(dir)?;
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

/// Makes the socket's directory 0750 if oriond creates it; one that exists is used as it
/// is (systemd's `RuntimeDirectory`, an admin's choice), unless others may write in it:
/// whoever can write there can replace the socket.
fn socket_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                bail!("socket directory {} is not a directory", dir.display());
            }
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o022 != 0 {
                bail!(
                    "socket directory {} is writable by group or others (mode {mode:04o}), \
                     who could replace the socket; make it 0750 or give oriond its own \
                     (supervisor.socket_dir)",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .with_context(|| format!("create {}", dir.display()))?;
            // The umask may have taken bits away; this directory is ours to set.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
                .with_context(|| format!("chmod {}", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("inspect {}", dir.display())),
    }
}

/// Accepts connections until the supervisor is gone.
pub fn spawn_accept(listener: UnixListener, events: Events) {
    tokio::spawn(async move {
        let clients = Arc::new(AtomicUsize::new(0));
        let children = Arc::new(AtomicUsize::new(0));
        let mut next_id: ConnId = 1;
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let peer_pid = stream
                .peer_cred()
                .ok()
                .and_then(|c| c.pid())
                .and_then(|p| u32::try_from(p).ok());
            // A peer whose pid is unknown is no operator either.
            let oriond = std::process::id() as i32;
            let descendant =
                peer_pid.is_none_or(|p| crate::lineage::descends_from(p as i32, oriond));
            let (live, max) = if descendant {
                (children.clone(), CHILD_SLOTS)
            } else {
                (clients.clone(), MAX_CONNECTIONS)
            };
            if live.load(Ordering::Acquire) >= max {
                refuse(&mut stream, max).await;
                continue;
            }
            live.fetch_add(1, Ordering::AcqRel);
            let conn = next_id;
            next_id += 1;
            let (reader, writer) = stream.into_split();
            let (outbox, rx) = crate::outbox::outbox(OUTBOX, OUTBOX_BYTES);
            let (gone_tx, gone) = oneshot::channel();
            tokio::spawn(write_loop(writer, rx, gone_tx));
            if events
                .send(Event::Accepted {
                    conn,
                    outbox,
                    peer_pid,
                    descendant,
                })
                .is_err()
            {
                return;
            }
            tokio::spawn(read_loop(reader, conn, events.clone(), gone, live));
        }
    });
}

/// Over the limit: one error, then the connection closes; nothing is read from it.
async fn refuse(stream: &mut UnixStream, max: usize) {
    tracing::warn!(max, "too many connections; refusing one");
    let ack = Message::Ack(Ack::new(
        "unknown",
        None,
        Err(AckError::new(
            ErrorKind::Busy,
            format!("oriond takes at most {max} connections of this kind; try again"),
        )),
    ));
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        wire::write_message(stream, &message::encode(&ack)),
    )
    .await;
    let _ = stream.shutdown().await;
}

async fn read_loop(
    mut reader: tokio::net::unix::OwnedReadHalf,
    conn: ConnId,
    events: Events,
    mut gone: oneshot::Receiver<()>,
    live: Arc<AtomicUsize>,
) {
    let why = loop {
        tokio::select! {
            // The supervisor let go of this connection: stop reading it.
            _ = &mut gone => break None,
            read = wire::read_message(&mut reader) => match read {
                Ok(Some(body)) => {
                    if events.send(Event::Frame { conn, body }).is_err() {
                        break None;
                    }
                }
                Ok(None) => break None,
                Err(e @ WireError::TooLarge { .. }) => break Some(e.to_string()),
                Err(WireError::Io(_)) => break None,
            },
        }
    };
    live.fetch_sub(1, Ordering::AcqRel);
    let _ = events.send(Event::Closed { conn, why });
}

async fn write_loop(
    mut writer: tokio::net::unix::OwnedWriteHalf,
    mut rx: crate::outbox::Drain,
    gone: oneshot::Sender<()>,
) {
    while let Some(body) = rx.recv().await {
        if wire::write_message_up_to(&mut writer, &body, orion_protocol::wire::MAX_FROM_ORIOND)
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = writer.shutdown().await;
    let _ = gone.send(());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_directory_is_made_private_or_refused_if_others_can_write() {
        let base = std::env::temp_dir().join(format!("oriond-sockdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let fresh = base.join("a/run");
        socket_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        // An existing one is kept as it is…
        let kept = base.join("kept");
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o755)).unwrap();
        socket_dir(&kept).unwrap();
        assert_eq!(
            std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // …unless others can write in it (sticky or not), or it is no directory at all.
        for mode in [0o770, 0o777, 0o1777] {
            std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = socket_dir(&kept).unwrap_err().to_string();
            assert!(e.contains("socket directory"), "{mode:o}: {e}");
            assert_eq!(
                std::fs::metadata(&kept).unwrap().permissions().mode() & 0o7777,
                mode,
                "left as it was"
            );
        }
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            socket_dir(&file)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}

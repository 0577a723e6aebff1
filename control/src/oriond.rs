//! The link to oriond: connect to its socket (`ORION_SOCKET`), say hello, then framed JSON
//! both ways (`orion_protocol::wire`). Incoming messages arrive on a channel that closes
//! when oriond goes away.

use anyhow::{Context, Result};
use orion_protocol::ProcessName;
use orion_protocol::message::{self, Message};
use orion_protocol::wire::{MAX_FROM_ORIOND, nonblocking as wire};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

pub struct Link {
    pub outbox: mpsc::Sender<Vec<u8>>,
    pub inbox: mpsc::Receiver<Vec<u8>>,
}

pub async fn connect() -> Result<Link> {
    let path = std::env::var_os(orion_process::channel::SOCKET_ENV).context(
        "orion-control runs under oriond (ORION_SOCKET is not set); start oriond instead",
    )?;
    let stream = UnixStream::connect(&path)
        .await
        .with_context(|| format!("connect to oriond at {}", path.to_string_lossy()))?;
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(1024);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(1024);
    tokio::spawn(async move {
        while let Some(body) = out_rx.recv().await {
            if wire::write_message(&mut writer, &body).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            match wire::read_message_up_to(&mut reader, MAX_FROM_ORIOND).await {
                Ok(Some(body)) => {
                    if in_tx.send(body).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "bad message from oriond");
                    return;
                }
            }
        }
    });
    let hello = Message::Hello {
        name: ProcessName::Control,
        pid: std::process::id(),
    };
    // Ready once oriond knows it: MQTT may be down, and orion-control reports that itself
    // (availability, its counters) rather than holding the room's boot back.
    for m in [hello, Message::Ready] {
        out_tx
            .send(message::encode(&m))
            .await
            .context("say hello to oriond")?;
    }
    Ok(Link {
        outbox: out_tx,
        inbox: in_rx,
    })
}

//! The link to oriond: connect to its socket (`ORION_SOCKET`), say hello, then framed JSON
//! both ways (`orion_protocol::wire`). Incoming messages arrive on a channel that closes
//! when oriond goes away.

use anyhow::{Context, Result};
use orion_protocol::wire::MAX_MESSAGE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            let mut buf = Vec::with_capacity(body.len() + 4);
            buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
            buf.extend_from_slice(&body);
            if writer.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok(len) = reader.read_u32().await else {
                return;
            };
            let len = len as usize;
            if len > MAX_MESSAGE {
                tracing::error!(len, "oversize message from oriond");
                return;
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            if in_tx.send(body).await.is_err() {
                return;
            }
        }
    });
    let hello = serde_json::json!({"type": "hello", "name": "control", "pid": std::process::id()});
    out_tx
        .send(hello.to_string().into_bytes())
        .await
        .context("say hello to oriond")?;
    Ok(Link {
        outbox: out_tx,
        inbox: in_rx,
    })
}

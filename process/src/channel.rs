//! How a child talks to oriond. Under oriond (`ORION_SOCKET` set to oriond's socket path)
//! the child connects, introduces itself with `{"type":"hello","name":…,"pid":…}` and then
//! exchanges framed JSON messages ([`orion_protocol::wire`]): requests in, acks and events
//! out. When the socket closes the child stops: nothing of Orion runs unsupervised.
//!
//! Run by hand (no `ORION_SOCKET`), the same messages are JSON lines: out on stdout,
//! requests in on stdin — handy for debugging and for the per-process tests.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use orion_protocol::ProcessName;
use orion_protocol::command::MAX_COMMAND;
use orion_protocol::message::{self, Message};
use orion_protocol::wire;
use serde::Serialize;

/// Environment variable naming oriond's socket.
pub const SOCKET_ENV: &str = "ORION_SOCKET";

enum Link {
    Lines,
    Socket(Mutex<UnixStream>),
}

static LINK: OnceLock<Link> = OnceLock::new();

/// One message from oriond (or stdin).
pub enum Incoming {
    /// The text of one request.
    Message(String),
    /// A message that could not be read (too long, not UTF-8), and why.
    Rejected(String),
}

/// Connects to oriond if this process runs under it and says hello as `name`. Returns
/// whether it did. Call once, before [`send`].
pub fn open(name: ProcessName) -> Result<bool> {
    let link = match std::env::var_os(SOCKET_ENV) {
        None => Link::Lines,
        Some(path) => {
            let mut stream = UnixStream::connect(&path)
                .with_context(|| format!("connect to oriond at {}", path.to_string_lossy()))?;
            let hello = Message::Hello {
                name,
                pid: std::process::id(),
            };
            wire::write_message(&mut stream, &message::encode(&hello))
                .context("say hello to oriond")?;
            Link::Socket(Mutex::new(stream))
        }
    };
    let socket = matches!(link, Link::Socket(_));
    // A second call keeps the first link.
    let _ = LINK.set(link);
    Ok(socket)
}

/// Sends one message (an event or an ack). A gone supervisor is not an error here: the
/// reader notices the closed socket and stops the process.
pub fn send(value: &impl Serialize) {
    let Ok(body) = serde_json::to_vec(value) else {
        return;
    };
    match LINK.get() {
        Some(Link::Socket(stream)) => {
            if let Ok(mut stream) = stream.lock() {
                let _ = wire::write_message(&mut *stream, &body);
            }
        }
        _ => {
            let mut out = std::io::stdout().lock();
            let _ = out
                .write_all(&body)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
        }
    }
}

/// Reads requests on a thread and hands each to `on_message`. Under oriond, the end of the
/// socket sets `shutdown`; by hand, the end of stdin only ends the reading.
pub fn spawn_reader(
    shutdown: Arc<AtomicBool>,
    on_message: impl FnMut(Incoming) + Send + 'static,
) -> Result<()> {
    match LINK.get() {
        Some(Link::Socket(stream)) => {
            let input = stream
                .lock()
                .map_err(|_| anyhow::anyhow!("socket lock poisoned"))?
                .try_clone()
                .context("clone the socket for reading")?;
            std::thread::spawn(move || {
                read_socket(input, on_message);
                tracing::info!("oriond's socket closed; stopping");
                shutdown.store(true, Ordering::SeqCst);
            });
        }
        _ => {
            std::thread::spawn(move || read_lines(on_message));
        }
    }
    Ok(())
}

fn read_socket(mut input: UnixStream, mut on_message: impl FnMut(Incoming)) {
    loop {
        match wire::read_message(&mut input) {
            Ok(Some(body)) => match String::from_utf8(body) {
                Ok(text) => on_message(Incoming::Message(text)),
                Err(_) => on_message(Incoming::Rejected("message is not UTF-8".into())),
            },
            Ok(None) => return,
            Err(e) => {
                // The stream cannot be resynchronized after a bad length: end it.
                tracing::warn!(error = %e, "bad message from oriond");
                return;
            }
        }
    }
}

fn read_lines(mut on_message: impl FnMut(Incoming)) {
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    loop {
        line.clear();
        match Read::by_ref(&mut stdin)
            .take(MAX_COMMAND as u64 + 1)
            .read_line(&mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_COMMAND && !line.ends_with('\n') => {
                // Skip the rest of the oversized line, then reject it.
                let mut rest = Vec::new();
                let _ = stdin.read_until(b'\n', &mut rest);
                on_message(Incoming::Rejected(format!(
                    "command longer than {MAX_COMMAND} bytes"
                )));
            }
            Ok(_) if line.trim().is_empty() => {}
            Ok(_) => on_message(Incoming::Message(line.trim().to_string())),
        }
    }
}

//! Starting a child process: its files written, the frame ring handed down at descriptor 3,
//! the parent-death signal set before exec, stdout and stderr read line by line into
//! [`Event::Output`], and a reaper task that reports [`Event::Exited`] the moment the
//! process ends (tokio's SIGCHLD handling, not polling).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::Signal;
use orion_process::ring_arg::RING_FD;
use orion_protocol::ProcessName;
use orion_ring::RingOwner;
use tokio::io::{AsyncBufReadExt, AsyncRead};

use crate::events::{Event, Events};
use crate::spec::Spec;

/// Longest line kept from a child's output; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 8192;

/// Spawns `spec` as generation `generation` of child `name`; its pid, or why not.
pub fn spawn(
    name: ProcessName,
    generation: u64,
    spec: &Spec,
    ring: &RingOwner,
    socket: &Path,
    events: &Events,
) -> Result<u32, String> {
    write_files(&spec.files).map_err(|e| format!("cannot write {name}'s files: {e}"))?;
    let mut cmd = tokio::process::Command::new(&spec.program);
    crate::sys::die_with_oriond(&mut cmd);
    if let Some(access) = spec.ring {
        let fd = ring
            .share(access)
            .map_err(|e| format!("cannot hand the frame ring to {name}: {e}"))?;
        cmd.fd_mappings(vec![FdMapping {
            parent_fd: fd,
            child_fd: RING_FD,
        }])
        .map_err(|e| format!("cannot hand the frame ring to {name}: {e}"))?;
    }
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(orion_process::channel::SOCKET_ENV, socket)
        // Lines without timestamps: oriond stamps and relays them (`crate::relay`).
        .env(orion_process::logging::RELAYED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Terminal signals (Ctrl-C) go to oriond only; it stops the children in order.
        .process_group(0);
    let mut process = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.program.display()))?;
    let pid = process.id().ok_or("the child exited before it got a pid")?;
    let owned = crate::orphans::Owned::new(pid);
    if let Some(out) = process.stdout.take() {
        read_lines(name, out, events.clone());
    }
    if let Some(err) = process.stderr.take() {
        read_lines(name, err, events.clone());
    }
    let tx = events.clone();
    tokio::spawn(async move {
        let status = match process.wait().await {
            Ok(status) => describe_exit(status),
            Err(e) => format!("wait failed: {e}"),
        };
        drop(owned);
        let _ = tx.send(Event::Exited {
            name,
            generation,
            status,
            reaped: SystemTime::now(),
        });
    });
    Ok(pid)
}

/// Sends `signal` to `pid` (gone already: nothing to do).
pub fn signal(pid: u32, signal: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

fn read_lines(name: ProcessName, stream: impl AsyncRead + Send + Unpin + 'static, tx: Events) {
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Reads at most MAX_LINE bytes of a line, then skips the rest of it: a child
            // cannot make oriond buffer an endless line.
            match read_bounded_line(&mut reader, &mut buf).await {
                Ok(0) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send(Event::Output { name, line }).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
}

/// One line into `buf` (without its newline), at most [`MAX_LINE`] bytes kept; returns the
/// bytes consumed (0 at the end of the stream).
async fn read_bounded_line(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let (mut consumed, mut dropped) = (0, false);
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (line, done, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        dropped |= line.len() > room;
        buf.extend_from_slice(&line[..line.len().min(room)]);
        reader.consume(done);
        consumed += done;
        if ended {
            if dropped {
                buf.extend_from_slice(b" [truncated]");
            }
            return Ok(consumed);
        }
    }
}

/// Writes each file (0600, as a new file: a symlink planted there is not followed).
fn write_files(files: &[(PathBuf, String)]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for (path, text) in files {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_before_they_are_buffered() {
        let long = "x".repeat(MAX_LINE * 3);
        let input = format!("short\n{long}\nafter\n");
        let mut reader = tokio::io::BufReader::with_capacity(64, input.as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_bounded_line(&mut reader, &mut buf).await.unwrap() > 0 {
            lines.push(String::from_utf8(buf.clone()).unwrap());
            buf.clear();
        }
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "short");
        assert_eq!(lines[1].len(), MAX_LINE + " [truncated]".len());
        assert!(lines[1].ends_with(" [truncated]"));
        assert_eq!(lines[2], "after");
    }
}

//! Running `orion-snapshot` for one snapshot: the frame ring handed down read-only at
//! descriptor 3, the overlay written to its stdin, its report and image read from stdout
//! (bounded), all within [`TIMEOUT`]; the outcome comes back as [`Event::Snapshot`]. The
//! helper is its own process so that oriond holds no image codecs and stays small.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use orion_process::ring_arg::RING_FD;
use orion_protocol::snapshot::{MAX_IMAGE, Overlay, Taken};
use orion_ring::{Access, RingOwner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::events::{Event, Events, Shot};

/// The longest a snapshot may take (a frame is read and encoded in well under a second).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Most of the helper's stderr kept for the error.
const MAX_STDERR: u64 = 4096;

/// What running the helper needs.
pub struct Helper {
    pub program: PathBuf,
    pub font: PathBuf,
}

/// Starts snapshot `id`; its outcome arrives as [`Event::Snapshot`].
pub fn take(
    id: u64,
    helper: &Helper,
    overlay: &Overlay,
    ring: &RingOwner,
    events: &Events,
) -> Result<(), String> {
    let fd = ring
        .share(Access::ReadOnly)
        .map_err(|e| format!("cannot hand the frame ring to orion-snapshot: {e}"))?;
    let mut cmd = tokio::process::Command::new(&helper.program);
    crate::sys::die_with_oriond(&mut cmd);
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: fd,
        child_fd: RING_FD,
    }])
    .map_err(|e| format!("cannot hand the frame ring to orion-snapshot: {e}"))?;
    cmd.arg("--ring-fd")
        .arg(RING_FD.to_string())
        .arg("--font")
        .arg(&helper.font)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", helper.program.display()))?;
    let owned = child.id().map(crate::orphans::Owned::new);
    let input = serde_json::to_vec(overlay).map_err(|e| e.to_string())?;
    let tx = events.clone();
    tokio::spawn(async move {
        let result = tokio::time::timeout(TIMEOUT, run(child, input))
            .await
            .unwrap_or_else(|_| Err(format!("no snapshot within {} s", TIMEOUT.as_secs())));
        drop(owned);
        let _ = tx.send(Event::Snapshot { id, result });
    });
    Ok(())
}

/// Feeds the helper and collects its output (dropping `child` on a timeout kills it).
async fn run(mut child: tokio::process::Child, input: Vec<u8>) -> Result<Shot, String> {
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that died early closes the pipe; its stderr says why.
        let _ = stdin.write_all(&input).await;
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let limit = (MAX_IMAGE + 64 * 1024) as u64;
    let (mut stdout, mut stderr) = (stdout.take(limit + 1), stderr.take(MAX_STDERR));
    let (read_out, _) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err),);
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if !status.success() {
        let why = String::from_utf8_lossy(&err);
        let why = why.lines().last().unwrap_or("").trim();
        let why = why.strip_prefix("orion-snapshot: ").unwrap_or(why);
        return Err(if why.is_empty() {
            format!("orion-snapshot failed ({status})")
        } else {
            why.to_string()
        });
    }
    read_out.map_err(|e| format!("reading orion-snapshot: {e}"))?;
    if out.len() as u64 > limit {
        return Err("orion-snapshot wrote more than an image may be".into());
    }
    parse(&out)
}

/// The report (one framed message) and the image after it.
fn parse(out: &[u8]) -> Result<Shot, String> {
    let mut rest = out;
    let report = orion_protocol::wire::read_message(&mut rest)
        .map_err(|e| format!("orion-snapshot's report: {e}"))?
        .ok_or("orion-snapshot wrote nothing")?;
    let taken: Taken =
        serde_json::from_slice(&report).map_err(|e| format!("orion-snapshot's report: {e}"))?;
    if rest.is_empty() {
        return Err("orion-snapshot wrote no image".into());
    }
    Ok(Shot {
        taken,
        image: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_comes_first_and_the_image_after_it() {
        let taken = Taken {
            frame_seq: 9,
            width: 4,
            height: 2,
            captured_unix_ns: 1,
            captioned: true,
            boxes_drawn: false,
        };
        let mut out = Vec::new();
        orion_protocol::wire::write_message(&mut out, &serde_json::to_vec(&taken).unwrap())
            .unwrap();
        assert_eq!(parse(&out).err().unwrap(), "orion-snapshot wrote no image");
        out.extend_from_slice(b"\x89PNG");
        let shot = parse(&out).unwrap();
        assert_eq!(
            (shot.taken, shot.image.as_slice()),
            (taken, &b"\x89PNG"[..])
        );
        assert!(parse(b"").is_err() && parse(b"\0\0\0\x02{}").is_err());
    }
}

//! Writing a state file so that a crash leaves the old or the new one, never a torn one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `body` to `path` atomically: a temp file beside it (created fresh, never through
/// a link, 0600), fsync, rename over `path`, fsync of the directory.
pub fn write_atomically(path: &Path, body: &[u8]) -> Result<()> {
    replace(path, body, 0o600, true)
}

/// Replaces `path` with `body` so that a reader sees the old or the new file, never a part
/// (the temp file's name has no `.prom`, which node_exporter would read); `durable`: also
/// survive a power cut (fsyncs), for state rather than a file rewritten every few seconds.
pub fn replace(path: &Path, body: &[u8], mode: u32, durable: bool) -> Result<()> {
    let dir = path.parent().context("the path has no directory")?;
    let tmp = path.with_extension("json.tmp");
    // A leftover from a crash goes first; then only a file this call creates is written
    // (O_EXCL), never one a link points elsewhere (O_NOFOLLOW).
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", tmp.display())),
    }
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(body)?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the JSON state file at `path`: `None` when there is none; an error when it is
/// larger than `max` bytes or does not parse.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, max: u64) -> Result<Option<T>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    anyhow::ensure!(meta.len() <= max, "larger than {max} bytes");
    Ok(Some(serde_json::from_slice(&std::fs::read(path)?)?))
}

/// Moves a state file that cannot be used aside (`*.json.bad`, kept for the operator);
/// where it went.
pub fn set_aside(path: &Path) -> std::path::PathBuf {
    let aside = path.with_extension("json.bad");
    let _ = std::fs::rename(path, &aside);
    aside
}

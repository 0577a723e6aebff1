//! The writer and reader loops behind the `ring-writer` and `ring-reader` helper programs
//! (also run by `orion-bench`). Both stop when their stdin closes, so a test or bench that
//! dies takes them with it.

use std::collections::BTreeSet;
use std::io::{Read as _, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use orion_ring::{
    CaptureTime, FrameGeometry, PixelFormat, Read, RingError, RingName, RingReader, RingWriter,
};
use serde::{Deserialize, Serialize};

use crate::pattern;

/// Printed by the writer once attached, as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
pub struct WriterReady {
    pub pid: u32,
    pub epoch: u64,
    pub next_seq: u64,
}

/// Printed by the writer when it finishes, as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
pub struct WriterSummary {
    pub frames: u64,
    pub last_seq: u64,
}

/// Printed by the reader when it finishes, as one JSON line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReaderSummary {
    /// Frames the ring accepted whose checksum held.
    pub accepted: u64,
    /// Frames the ring accepted whose checksum failed or whose header disagreed with the
    /// ring's metadata: torn frames that got through. Must be 0.
    pub torn_accepted: u64,
    /// Reads the ring itself rejected as torn.
    pub torn_detected: u64,
    /// Frames skipped because a newer one was taken (mailbox semantics).
    pub skipped: u64,
    /// Times the newest sequence went backwards (must be 0).
    pub seq_regressions: u64,
    pub distinct_epochs: u64,
    pub last_seq: u64,
}

/// A flag set when stdin reaches end of file.
pub fn stop_on_stdin_close() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Writes self-checking Gray8 frames of `width`×`height` (a multiple of 8 bytes) as fast as
/// possible, or every `interval`, until `stop` is set or `max_frames` were written.
pub fn run_writer(
    ring: RingName,
    width: u32,
    height: u32,
    interval: Option<Duration>,
    max_frames: Option<u64>,
    stop: &AtomicBool,
) -> Result<WriterSummary> {
    let frame = FrameGeometry::packed(width, height, PixelFormat::Gray8)?;
    let mut patterns = pattern::Patterns::new(frame.full_len() as usize);
    let mut writer =
        RingWriter::attach(ring.clone()).with_context(|| format!("attach writer to {ring}"))?;
    print_json(&WriterReady {
        pid: std::process::id(),
        epoch: writer.epoch(),
        next_seq: writer.next_seq(),
    })?;
    let mut summary = WriterSummary {
        frames: 0,
        last_seq: 0,
    };
    while !stop.load(Ordering::Relaxed) && max_frames.is_none_or(|m| summary.frames < m) {
        let payload = patterns.frame(writer.next_seq(), writer.epoch());
        summary.last_seq = writer.write(frame, CaptureTime::now(), payload)?;
        summary.frames += 1;
        if let Some(pause) = interval {
            std::thread::sleep(pause);
        }
    }
    Ok(summary)
}

/// Attaches, retrying while the ring does not exist yet (a reader may start first) or is
/// still being created (sized, then its header written; the magic comes last).
pub fn attach_reader(ring: &RingName, patience: Duration) -> Result<RingReader> {
    let deadline = Instant::now() + patience;
    loop {
        match RingReader::attach(ring.clone()) {
            Err(
                RingError::NotFound { .. }
                | RingError::Truncated { .. }
                | RingError::BadMagic { .. },
            ) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            other => return other.with_context(|| format!("attach reader to {ring}")),
        }
    }
}

/// Reads the newest frame whenever one is published and checks every accepted payload,
/// until `stop` is set.
pub fn run_reader(mut reader: RingReader, stop: &AtomicBool) -> Result<ReaderSummary> {
    let mut summary = ReaderSummary::default();
    let mut epochs = BTreeSet::new();
    let mut last_seen = 0;
    let mut payload = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if reader
            .wait_for_newer(last_seen, Duration::from_millis(20))
            .is_none()
        {
            continue;
        }
        match reader.read_latest_into(&mut payload)? {
            Read::Frame(meta) => {
                let verified = pattern::verify(&payload);
                let intact = verified.is_some_and(|v| v.seq == meta.seq && v.epoch == meta.epoch);
                if intact {
                    summary.accepted += 1;
                } else {
                    summary.torn_accepted += 1;
                }
                if meta.seq < last_seen {
                    summary.seq_regressions += 1;
                }
                last_seen = last_seen.max(meta.seq);
                epochs.insert(meta.epoch);
            }
            Read::Torn { .. } | Read::NoFrame => {}
        }
    }
    let stats = reader.stats();
    summary.torn_detected = stats.torn;
    summary.skipped = stats.skipped;
    summary.distinct_epochs = epochs.len() as u64;
    summary.last_seq = last_seen;
    Ok(summary)
}

/// `ring-writer` main body: run until stdin closes, print the summary.
pub fn writer_main(
    ring: &str,
    width: u32,
    height: u32,
    interval_us: u64,
    frames: u64,
) -> Result<()> {
    let stop = stop_on_stdin_close();
    let interval = (interval_us > 0).then(|| Duration::from_micros(interval_us));
    let max = (frames > 0).then_some(frames);
    let summary = run_writer(RingName::new(ring)?, width, height, interval, max, &stop)?;
    print_json(&summary)
}

/// `ring-reader` main body: run until stdin closes, print the summary.
pub fn reader_main(ring: &str) -> Result<()> {
    let stop = stop_on_stdin_close();
    let ring = RingName::new(ring)?;
    let reader = attach_reader(&ring, Duration::from_secs(10))?;
    print_json(&serde_json::json!({"attached": ring.as_str()}))?;
    let summary = run_reader(reader, &stop)?;
    print_json(&summary)
}

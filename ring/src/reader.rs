//! Readers: newest-frame (mailbox) reads with torn-read detection, and waiting for frames.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::RingError;
use crate::layout::{FrameMeta, RingGeometry};
use crate::mapping::Mapped;
use crate::owner::{WriterInfo, writer_info};
use crate::source::ShmSource;
use crate::sync::futex_wait;

/// Outcome of one read attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<T> {
    /// A whole, consistent frame.
    Frame(T),
    /// Nothing has been published yet.
    NoFrame,
    /// The writer overwrote or was writing the slot during the read; nothing was accepted.
    /// Counted in [`ReaderStats::torn`].
    Torn { seq: u64 },
}

/// A reader's counters, for status reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Frames read successfully.
    pub frames: u64,
    /// Reads rejected because the slot changed under them.
    pub torn: u64,
    /// Frames published but never read because a newer one was taken instead (mailbox).
    pub skipped: u64,
}

/// What a slot's seqlock word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub index: u32,
    /// The frame the slot holds (or is being filled with); 0 if never written.
    pub seq: u64,
    /// True while a writer is inside the slot, or if a writer died there.
    pub being_written: bool,
}

/// A read-only attachment to a ring. Any number of readers may attach; none can slow or
/// block the writer.
pub struct RingReader {
    mapped: Mapped,
    last_seq: u64,
    stats: ReaderStats,
}

impl RingReader {
    /// Attaches read-only; fails clearly if the object is missing, truncated or not a
    /// ring of this ABI version.
    pub fn attach(source: impl Into<ShmSource>) -> Result<Self, RingError> {
        Ok(Self {
            mapped: Mapped::attach_ro(source.into())?,
            last_seq: 0,
            stats: ReaderStats::default(),
        })
    }

    pub fn geometry(&self) -> RingGeometry {
        self.mapped.geometry()
    }

    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    pub fn writer_info(&self) -> WriterInfo {
        writer_info(&self.mapped)
    }

    /// Newest published sequence number (0: none yet).
    pub fn latest_seq(&self) -> u64 {
        // SYNC POINT: Acquire pairs with the Release store in `publish`.
        self.mapped.header().latest_seq.load(Ordering::Acquire)
    }

    /// Blocks until a frame newer than `seq` is published or `timeout` passes; returns the
    /// newest sequence number, or `None` on timeout. Sleeps on a futex: no polling.
    pub fn wait_for_newer(&self, seq: u64, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let word = &self.mapped.header().wake_word;
        loop {
            // Read the futex word before the condition, so a publish in between changes the
            // word and makes the wait return at once.
            let observed = word.load(Ordering::Acquire);
            let latest = self.latest_seq();
            if latest > seq {
                return Some(latest);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            futex_wait(word, observed, deadline - now);
        }
    }

    /// Copies the newest frame into `out` (replacing what it held); the frame is only
    /// returned if it stayed intact throughout the copy, else the read is [`Read::Torn`].
    /// (A copy, never a view: the writer may be changing a slot while it is read.)
    pub fn read_latest_into(&mut self, out: &mut Vec<u8>) -> Result<Read<FrameMeta>, RingError> {
        self.read_latest(Some(out))
    }

    /// The newest frame's metadata, without its payload.
    pub fn read_latest_meta(&mut self) -> Result<Read<FrameMeta>, RingError> {
        self.read_latest(None)
    }

    fn read_latest(&mut self, out: Option<&mut Vec<u8>>) -> Result<Read<FrameMeta>, RingError> {
        let seq = self.latest_seq();
        if seq == 0 {
            return Ok(Read::NoFrame);
        }
        let Some((index, raw)) = self.mapped.begin_read(seq) else {
            return Ok(self.torn(seq));
        };
        let meta = match self.mapped.validate_meta(index, seq, &raw) {
            Ok(meta) => meta,
            // Garbage metadata is only an error if it was not just a torn read.
            Err(_) if !self.mapped.verify_read(index, &raw) => return Ok(self.torn(seq)),
            Err(err) => return Err(err),
        };
        if let Some(out) = out {
            out.clear();
            self.mapped.copy_payload(index, 0, meta.payload_len, out);
        }
        if !self.mapped.verify_read(index, &raw) {
            return Ok(self.torn(seq));
        }
        if seq > self.last_seq {
            if self.last_seq != 0 {
                self.stats.skipped += seq - self.last_seq - 1;
            }
            self.last_seq = seq;
        }
        self.stats.frames += 1;
        Ok(Read::Frame(meta))
    }

    /// A snapshot of every slot's seqlock, for diagnostics (`orion-ring`-style inspection,
    /// tests that check a writer died mid-write).
    pub fn slot_states(&self) -> Vec<SlotState> {
        (0..self.mapped.geometry().slots())
            .map(|index| {
                let word = self.mapped.slot(index).seqlock.load(Ordering::Acquire);
                SlotState {
                    index,
                    seq: word >> 1,
                    being_written: word & 1 == 1,
                }
            })
            .collect()
    }

    fn torn<T>(&mut self, seq: u64) -> Read<T> {
        self.stats.torn += 1;
        Read::Torn { seq }
    }
}

//! The single writer: claims the ring, writes frames, publishes them.

use std::sync::atomic::Ordering;

use crate::RingError;
use crate::layout::{FrameGeometry, FrameMeta, RingGeometry};
use crate::mapping::Mapped;
use crate::owner::{WriterInfo, writer_info};
use crate::source::ShmSource;
use crate::sync::{monotonic_ns, realtime_ns};

/// When a frame was captured, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureTime {
    pub realtime_ns: u64,
    pub monotonic_ns: u64,
}

impl CaptureTime {
    pub fn now() -> Self {
        Self {
            realtime_ns: realtime_ns(),
            monotonic_ns: monotonic_ns(),
        }
    }
}

/// A ring mapped for writing but not claimed: a successor writer (make-before-break) maps
/// the ring at start-up, before its sandbox closes, and claims it only once the writer
/// before it is gone. It never writes.
pub struct StandbyWriter {
    mapped: Mapped,
}

impl StandbyWriter {
    /// Maps an existing ring read-write (its header checked) without claiming it.
    pub fn map(source: impl Into<ShmSource>) -> Result<Self, RingError> {
        Ok(Self {
            mapped: Mapped::attach_rw(source.into())?,
        })
    }

    pub fn geometry(&self) -> RingGeometry {
        self.mapped.geometry()
    }

    /// Claims the ring as its writer: fails with [`RingError::WriterBusy`] while another
    /// live process holds it (a writer that died, even by SIGKILL, is replaced). Starts a
    /// new epoch; the sequence continues after the newest published frame.
    pub fn claim(self) -> Result<RingWriter, RingError> {
        let mapped = self.mapped;
        let pid = std::process::id();
        let h = mapped.header();
        loop {
            let current = h.writer_pid.load(Ordering::Acquire);
            // Our own pid counts too: one writer handle per process, handed out once.
            if current != 0 && process_alive(current) {
                return Err(RingError::WriterBusy {
                    name: mapped.source().to_string(),
                    pid: current,
                });
            }
            if h.writer_pid
                .compare_exchange(current, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
        }
        let epoch = h.writer_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let next_seq = h.latest_seq.load(Ordering::Acquire) + 1;
        h.writer_heartbeat_ns
            .store(monotonic_ns(), Ordering::Relaxed);
        Ok(RingWriter {
            mapped,
            pid,
            epoch,
            next_seq,
        })
    }
}

/// The one writer of a ring. Attaching claims the ring (pid in the header) and starts a new
/// epoch; the sequence continues after the newest published frame, so readers see one
/// unbroken sequence across writer restarts.
pub struct RingWriter {
    mapped: Mapped,
    pid: u32,
    epoch: u64,
    next_seq: u64,
}

impl RingWriter {
    /// Attaches to an existing ring as its writer ([`StandbyWriter::map`] then `claim`).
    ///
    /// Fails with [`RingError::WriterBusy`] if another live process is attached as writer;
    /// a writer that died (even by SIGKILL) is replaced.
    pub fn attach(source: impl Into<ShmSource>) -> Result<Self, RingError> {
        StandbyWriter::map(source)?.claim()
    }

    /// The CLOCK_MONOTONIC capture time of the newest frame in the ring, whoever wrote it
    /// (`None` before the first): a successor writes a held frame only if it is newer.
    pub fn latest_monotonic_ns(&self) -> Option<u64> {
        let seq = self.mapped.header().latest_seq.load(Ordering::Acquire);
        if seq == 0 {
            return None;
        }
        self.mapped
            .begin_read(seq)
            .map(|(_, raw)| raw.monotonic_ns())
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn geometry(&self) -> RingGeometry {
        self.mapped.geometry()
    }

    /// Sequence number the next frame will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn info(&self) -> WriterInfo {
        writer_info(&self.mapped)
    }

    /// Writes one frame and publishes it; returns its sequence number.
    ///
    /// `payload` holds `frame.height()` rows of `frame.stride()` bytes (the last row may
    /// lack its padding). Never blocks on readers.
    pub fn write(
        &mut self,
        frame: FrameGeometry,
        time: CaptureTime,
        payload: &[u8],
    ) -> Result<u64, RingError> {
        let len = payload.len() as u64;
        let capacity = self.mapped.geometry().slot_capacity();
        if len > capacity {
            return Err(RingError::FrameTooLarge { len, capacity });
        }
        if len < frame.min_payload_len() {
            return Err(RingError::PayloadTooShort {
                len,
                width: frame.width(),
                height: frame.height(),
                stride: frame.stride(),
                needed: frame.min_payload_len(),
            });
        }
        let seq = self.next_seq;
        let meta = FrameMeta {
            seq,
            epoch: self.epoch,
            realtime_ns: time.realtime_ns,
            monotonic_ns: time.monotonic_ns,
            geometry: frame,
            payload_len: len,
        };
        let index = self.mapped.begin_write(seq);
        self.mapped.write_payload(index, 0, payload);
        self.mapped.finish_write(index, &meta);
        self.mapped.publish(seq, monotonic_ns());
        self.next_seq += 1;
        Ok(seq)
    }

    /// Tells readers the writer is alive while no frames flow (e.g. camera reconnecting).
    pub fn heartbeat(&self) {
        self.mapped
            .header()
            .writer_heartbeat_ns
            .store(monotonic_ns(), Ordering::Relaxed);
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        // A clean exit releases the claim; a killed writer's pid is detected as dead instead.
        let _ = self.mapped.header().writer_pid.compare_exchange(
            self.pid,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// True if `pid` names a running (not zombie) process.
fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => !is_zombie(pid),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// A killed child stays a zombie until reaped; it holds no ring state any more.
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

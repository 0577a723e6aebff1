//! The appsink end: each decoded RGB frame goes into the ring, and is counted. A successor
//! capture (make-before-break) starts in standby: it keeps only the newest frame until
//! oriond says the writer before it is gone, then claims the ring and writes that frame at
//! once (if it is newer than the ring's newest).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use orion_process::rate::RateWindow;
use orion_ring::{
    CaptureTime, FrameGeometry, PixelFormat, RingWriter, StandbyWriter, monotonic_ns,
};

/// Window over which fps is measured.
const FPS_WINDOW: Duration = Duration::from_secs(5);

/// The newest frame of a capture in standby, copied out of GStreamer's buffer.
struct Held {
    geometry: FrameGeometry,
    time: CaptureTime,
    payload: Vec<u8>,
}

/// The ring as this process holds it.
enum Slot {
    /// Mapped, not claimed: frames are held, not written.
    Standby {
        ring: StandbyWriter,
        held: Option<Held>,
    },
    /// The writer.
    Writing(RingWriter),
    /// A take-over failed; nothing is written (the process exits).
    Lost,
}

/// How a take-over went.
#[derive(Debug)]
pub struct TookOver {
    /// The epoch this process writes under.
    pub epoch: u64,
    /// The held frame went into the ring at once (else it was older than the ring's
    /// newest, or there was none, and the next frame comes first).
    pub held_written: bool,
}

/// Owns the ring writer for the whole life of the process (across pipeline rebuilds, so
/// the epoch changes only when the process restarts) and the frame counters.
pub struct FrameSink {
    slot: Mutex<Slot>,
    frames: AtomicU64,
    /// Frames taken in standby (kept, not written).
    held: AtomicU64,
    write_errors: AtomicU64,
    last_frame_ns: AtomicU64,
    last_seq: AtomicU64,
    recent: Mutex<RateWindow>,
    epoch: AtomicU64,
}

impl FrameSink {
    pub fn new(writer: RingWriter) -> Self {
        let epoch = writer.epoch();
        Self::with_slot(Slot::Writing(writer), epoch)
    }

    /// A successor: holds frames until [`FrameSink::take_over`].
    pub fn standby(ring: StandbyWriter) -> Self {
        Self::with_slot(Slot::Standby { ring, held: None }, 0)
    }

    fn with_slot(slot: Slot, epoch: u64) -> Self {
        Self {
            slot: Mutex::new(slot),
            frames: AtomicU64::new(0),
            held: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            last_frame_ns: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            recent: Mutex::new(RateWindow::new(FPS_WINDOW)),
            epoch: AtomicU64::new(epoch),
        }
    }

    /// In standby (not yet the writer).
    pub fn is_standby(&self) -> bool {
        self.slot
            .lock()
            .is_ok_and(|s| matches!(*s, Slot::Standby { .. }))
    }

    /// Claims the ring (the writer before is gone) and writes the held frame at once if it
    /// is newer than the ring's newest.
    pub fn take_over(&self) -> anyhow::Result<TookOver> {
        let mut slot = self
            .slot
            .lock()
            .map_err(|_| anyhow::anyhow!("ring writer poisoned"))?;
        if !matches!(*slot, Slot::Standby { .. }) {
            anyhow::bail!("not in standby: the ring was taken over already");
        }
        let Slot::Standby { ring, held } = std::mem::replace(&mut *slot, Slot::Lost) else {
            anyhow::bail!("not in standby");
        };
        let mut writer = ring
            .claim()
            .context("claim the ring from the writer before")?;
        let epoch = writer.epoch();
        self.epoch.store(epoch, Ordering::Relaxed);
        let newest = writer.latest_monotonic_ns();
        let mut held_written = false;
        if let Some(h) = held
            && newest.is_none_or(|n| h.time.monotonic_ns > n)
        {
            match writer.write(h.geometry, h.time, &h.payload) {
                Ok(seq) => {
                    held_written = true;
                    self.record(seq, h.time.monotonic_ns);
                }
                Err(e) => {
                    self.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "held frame not written to the ring");
                }
            }
        }
        *slot = Slot::Writing(writer);
        Ok(TookOver {
            epoch,
            held_written,
        })
    }

    /// Called on GStreamer's streaming thread for every frame.
    pub fn on_sample(&self, sample: &gst::Sample) -> Result<gst::FlowSuccess, gst::FlowError> {
        let time = CaptureTime::now();
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return Err(self.fail("sample without buffer or caps"));
        };
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| self.fail("caps are not raw video"))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| self.fail("cannot map frame"))?;
        let stride =
            u32::try_from(frame.plane_stride()[0]).map_err(|_| self.fail("negative stride"))?;
        let geometry = FrameGeometry::new(frame.width(), frame.height(), stride, PixelFormat::Rgb8)
            .map_err(|e| self.fail(&e.to_string()))?;
        let data = frame
            .plane_data(0)
            .map_err(|_| self.fail("frame has no plane 0"))?;
        let seq = {
            let mut slot = self
                .slot
                .lock()
                .map_err(|_| self.fail("ring writer poisoned"))?;
            match &mut *slot {
                Slot::Writing(writer) => writer
                    .write(geometry, time, data)
                    .map_err(|e| self.fail(&e.to_string()))?,
                Slot::Standby { held, .. } => {
                    keep(held, geometry, time, data);
                    self.held.fetch_add(1, Ordering::Relaxed);
                    self.last_frame_ns
                        .store(time.monotonic_ns, Ordering::Relaxed);
                    return Ok(gst::FlowSuccess::Ok);
                }
                Slot::Lost => return Err(self.fail("the ring could not be taken over")),
            }
        };
        self.record(seq, time.monotonic_ns);
        Ok(gst::FlowSuccess::Ok)
    }

    fn record(&self, seq: u64, now_ns: u64) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.last_seq.store(seq, Ordering::Relaxed);
        self.last_frame_ns.store(now_ns, Ordering::Relaxed);
        if let Ok(mut recent) = self.recent.lock() {
            recent.record(now_ns);
        }
    }

    fn fail(&self, why: &str) -> gst::FlowError {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = why, "frame not written to the ring");
        gst::FlowError::Error
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Frames from the camera: written, or held in standby.
    pub fn delivered(&self) -> u64 {
        self.frames() + self.held.load(Ordering::Relaxed)
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    /// The writer epoch (0 in standby).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// CLOCK_MONOTONIC ns of the newest frame; 0 before the first.
    pub fn last_frame_ns(&self) -> u64 {
        self.last_frame_ns.load(Ordering::Relaxed)
    }

    /// Frames per second over the last 5 s (0 with fewer than two frames in the window).
    pub fn fps(&self) -> f64 {
        self.recent
            .lock()
            .map_or(0.0, |mut recent| recent.rate(monotonic_ns()))
    }

    /// Tells ring readers the writer is alive while no frames flow.
    pub fn heartbeat(&self) {
        if let Ok(slot) = self.slot.lock()
            && let Slot::Writing(writer) = &*slot
        {
            writer.heartbeat();
        }
    }
}

/// Keeps the newest frame, reusing the buffer.
fn keep(held: &mut Option<Held>, geometry: FrameGeometry, time: CaptureTime, data: &[u8]) {
    let h = held.get_or_insert_with(|| Held {
        geometry,
        time,
        payload: Vec::with_capacity(data.len()),
    });
    h.geometry = geometry;
    h.time = time;
    h.payload.clear();
    h.payload.extend_from_slice(data);
}

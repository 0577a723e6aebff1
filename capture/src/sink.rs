//! The appsink end: each decoded RGB frame goes into the ring, and is counted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use orion_process::rate::RateWindow;
use orion_ring::{CaptureTime, FrameGeometry, PixelFormat, RingWriter, monotonic_ns};

/// Window over which fps is measured.
const FPS_WINDOW: Duration = Duration::from_secs(5);

/// Owns the ring writer for the whole life of the process (across pipeline rebuilds, so
/// the epoch changes only when the process restarts) and the frame counters.
pub struct FrameSink {
    writer: Mutex<RingWriter>,
    frames: AtomicU64,
    write_errors: AtomicU64,
    last_frame_ns: AtomicU64,
    last_seq: AtomicU64,
    recent: Mutex<RateWindow>,
    epoch: u64,
}

impl FrameSink {
    pub fn new(writer: RingWriter) -> Self {
        let epoch = writer.epoch();
        Self {
            writer: Mutex::new(writer),
            frames: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            last_frame_ns: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            recent: Mutex::new(RateWindow::new(FPS_WINDOW)),
            epoch,
        }
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
            let mut writer = self
                .writer
                .lock()
                .map_err(|_| self.fail("ring writer poisoned"))?;
            writer
                .write(geometry, time, data)
                .map_err(|e| self.fail(&e.to_string()))?
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

    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
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
        if let Ok(writer) = self.writer.lock() {
            writer.heartbeat();
        }
    }
}

//! The capture loop: build a pipeline, watch it, tear it down on error / end of stream /
//! stall, wait out the backoff, rebuild — forever, until asked to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use orion_protocol::StreamState;
use orion_ring::monotonic_ns;

use crate::pipeline::{self, StreamSettings};
use crate::sink::FrameSink;
use crate::source::{Probe, Source};
use crate::status::Reporter;
use orion_process::backoff::Backoff;

/// How often the loop wakes to check for stalls, status and shutdown.
const TICK: Duration = Duration::from_millis(50);
/// How often a camera that is down is probed while the backoff runs (a TCP connect or a
/// stat: cheap; a returning camera waits at most this long to be noticed).
const PROBE_EVERY: Duration = Duration::from_millis(500);

pub struct Capture {
    pub source: Source,
    pub settings: StreamSettings,
    /// No frame for this long → the stream counts as stalled and is rebuilt.
    pub stall_timeout: Duration,
    pub sink: Arc<FrameSink>,
    pub reporter: Reporter,
    pub shutdown: Arc<AtomicBool>,
}

/// How one pipeline's life ended.
enum Ended {
    /// Asked to stop: the process exits.
    Shutdown,
    /// The stream is gone; `healthy_for` is how long it delivered frames.
    Lost {
        reason: String,
        healthy_for: Duration,
    },
}

impl Capture {
    /// Stall timeout actually applied: at least two and a half frame intervals, so that a
    /// low rate (0.1 Hz = one frame per 10 s) is not mistaken for a stall.
    pub fn effective_stall_timeout(&self) -> Duration {
        self.stall_timeout
            .max(self.settings.rate.interval().mul_f64(2.5))
    }

    /// Runs until shutdown is requested.
    pub fn run(&mut self) {
        let mut backoff = Backoff::default();
        loop {
            match self.run_once() {
                Ended::Shutdown => return,
                Ended::Lost {
                    reason,
                    healthy_for,
                } => {
                    let delay = backoff.after_run(healthy_for);
                    self.reporter.update(|s| {
                        s.state = StreamState::Reconnecting;
                        s.reconnects += 1;
                        s.last_error = Some(reason);
                        s.retry_in_ms = Some(delay.as_millis() as u64);
                        s.fps = 0.0;
                    });
                    if self.sleep(delay) {
                        return;
                    }
                }
            }
        }
    }

    /// One pipeline, from build to teardown.
    fn run_once(&mut self) -> Ended {
        self.reporter.update(|s| {
            s.state = StreamState::Connecting;
            s.retry_in_ms = None;
        });
        let built = match pipeline::build(&self.source, self.settings) {
            Ok(built) => built,
            Err(err) => return lost(format!("cannot build pipeline: {err}"), Duration::ZERO),
        };
        let sink = self.sink.clone();
        built.sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |appsink| {
                    let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    sink.on_sample(&sample)
                })
                .build(),
        );
        let pipeline = Running(built.pipeline);
        if let Err(err) = pipeline.0.set_state(gst::State::Playing) {
            let detail = first_bus_error(&pipeline.0).unwrap_or_else(|| err.to_string());
            return lost(format!("cannot start: {detail}"), Duration::ZERO);
        }
        self.watch(&pipeline.0)
    }

    /// Watches a playing pipeline until it ends.
    fn watch(&mut self, pipeline: &gst::Pipeline) -> Ended {
        let Some(bus) = pipeline.bus() else {
            return lost("pipeline has no bus".into(), Duration::ZERO);
        };
        let started = Instant::now();
        let frames_before = self.sink.delivered();
        let mut first_frame: Option<Instant> = None;
        let stall = self.effective_stall_timeout();
        let healthy = |first: Option<Instant>| first.map_or(Duration::ZERO, |t| t.elapsed());
        // A decoder the stream needs and this box lacks: said before the error it causes.
        let mut missing: Option<String> = None;
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return Ended::Shutdown;
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(TICK.as_millis() as u64))
            {
                use gst::MessageView;
                match msg.view() {
                    MessageView::Error(err) => {
                        if let Some(what) = missing.take() {
                            return lost(undecodable(&what), healthy(first_frame));
                        }
                        let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                        let hint = match (&self.source, first_frame) {
                            // rtspsrc says no more than "could not open" for a failed
                            // TLS handshake.
                            (
                                Source::Rtsp {
                                    location, tls_ca, ..
                                },
                                None,
                            ) if location.scheme() == "rtsps" => {
                                if tls_ca.is_some() {
                                    " (rtsps: is the camera's certificate signed by camera.tls_ca and issued for this host?)"
                                } else {
                                    " (rtsps: is the camera's certificate trusted? a self-signed one needs camera.tls_ca)"
                                }
                            }
                            _ => "",
                        };
                        return lost(
                            format!("{from}: {}{hint}", err.error()),
                            healthy(first_frame),
                        );
                    }
                    MessageView::Element(e) => {
                        if let Some(what) = e.structure().and_then(missing_decoder) {
                            missing = Some(what);
                        }
                    }
                    MessageView::Eos(_) if self.source.loops() => {
                        if let Err(err) = pipeline.seek_simple(
                            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                            gst::ClockTime::ZERO,
                        ) {
                            return lost(
                                format!("cannot loop the file: {err}"),
                                healthy(first_frame),
                            );
                        }
                        tracing::debug!("file source looped");
                    }
                    MessageView::Eos(_) => {
                        return lost(
                            "end of stream: the source closed it".into(),
                            healthy(first_frame),
                        );
                    }
                    _ => {}
                }
            }
            let frames = self.sink.frames();
            if first_frame.is_none() && self.sink.delivered() > frames_before {
                first_frame = Some(Instant::now());
            }
            // Time since the last frame of this pipeline, or since it started.
            let quiet = match first_frame {
                Some(_) => {
                    Duration::from_nanos(monotonic_ns().saturating_sub(self.sink.last_frame_ns()))
                }
                None => started.elapsed(),
            };
            if quiet > stall {
                self.reporter.set_state(StreamState::Stalled);
                let what = if first_frame.is_some() {
                    "no frame"
                } else {
                    "no first frame"
                };
                return lost(
                    format!("stalled: {what} for {:.1} s", quiet.as_secs_f64()),
                    healthy(first_frame),
                );
            }
            self.sink.heartbeat();
            let state = match (first_frame, self.sink.is_standby()) {
                (None, _) => StreamState::Connecting,
                (Some(_), true) => StreamState::Standby,
                (Some(_), false) => StreamState::Running,
            };
            let (fps, last_seq) = (self.sink.fps(), self.sink.last_seq());
            let epoch = self.sink.epoch();
            self.reporter.update(|s| {
                s.state = state;
                s.frames = frames;
                s.fps = fps;
                s.last_seq = last_seq;
                s.epoch = epoch;
            });
        }
    }

    /// Waits out the backoff `delay`, waking early on shutdown (returns true then) or when
    /// the camera comes back: probed twice a second, a camera that was silent and now
    /// answers is reconnected at once. (One that answers all along but fails the session
    /// waits the full delay: the backoff protects it.)
    fn sleep(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        // The first look at once: the attempt that just failed may have met a camera that
        // is away; if it is back a moment later, that must count as a return.
        let mut next_probe = Instant::now();
        let mut was_silent = false;
        while Instant::now() < until {
            if self.shutdown.load(Ordering::Relaxed) {
                return true;
            }
            self.sink.heartbeat();
            if Instant::now() >= next_probe {
                next_probe = Instant::now() + PROBE_EVERY;
                match self.source.probe() {
                    Probe::Silent => was_silent = true,
                    Probe::Answers if was_silent => {
                        tracing::info!("the camera answers again; reconnecting now");
                        return self.shutdown.load(Ordering::Relaxed);
                    }
                    Probe::Answers | Probe::NotProbed => {}
                }
            }
            std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// The stream's format, if `s` is GStreamer's "missing-plugin" message for a decoder (its
/// `name` is a description such as "H.265 (Main Profile) decoder").
fn missing_decoder(s: &gst::StructureRef) -> Option<String> {
    if s.name() != "missing-plugin" || s.get::<&str>("type").ok()? != "decoder" {
        return None;
    }
    let caps = s.get::<gst::Caps>("detail").ok();
    let media = caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .map(|c| c.name().to_string());
    let name = s
        .get::<&str>("name")
        .ok()
        .map(|n| n.trim_end_matches(" decoder"));
    Some(match (name, media) {
        (Some(name), Some(media)) => format!("{name}, {media}"),
        (Some(name), None) => name.to_string(),
        (None, Some(media)) => media,
        (None, None) => "an unknown format".to_string(),
    })
}

/// Why a stream that needs a decoder this box lacks cannot be captured, and the fix.
fn undecodable(what: &str) -> String {
    format!(
        "the camera sends {what}, which this box cannot decode: no GStreamer decoder for it is \
         installed (Debian: gstreamer1.0-libav, gstreamer1.0-plugins-bad), or set the camera \
         to H.264"
    )
}

fn lost(reason: String, healthy_for: Duration) -> Ended {
    Ended::Lost {
        reason,
        healthy_for,
    }
}

/// A pipeline that is set to NULL (all threads stopped, sockets closed) when dropped.
struct Running(gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(err) = self.0.set_state(gst::State::Null) {
            tracing::warn!(%err, "pipeline teardown");
        }
    }
}

/// The first error already posted on the bus (why a state change failed).
fn first_bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(err) = msg.view() {
            return Some(err.error().to_string());
        }
    }
    None
}

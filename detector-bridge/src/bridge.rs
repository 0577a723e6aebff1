//! The bridge loop: newest frame → letterbox into a free tensor slot → infer → boxes in
//! frame pixels → detection message. One slot is prepared while the worker runs the other,
//! and handed to the worker at once: the worker finds it waiting in its input when it
//! finishes the current frame, so no round trip through this process sits between two
//! inferences. Which frame gets inferred is the same as if it were sent later: a slot is
//! filled with the newest frame when it becomes free.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use orion_process::backoff::Backoff;
use orion_process::ring_arg::RingArg;
use orion_protocol::{
    BBox, Detection, DetectionData, DetectionMessage, DetectionMetadata, ModelSize, NormRect,
    RoiSet, RoiSource, Timing,
};
use orion_ring::{FrameMeta, Read, RingReader, ShmSource, monotonic_ns};
use serde_json::{Value, json};

use crate::autofocus::{AutoFocus, CBox};
use crate::commands::{self, Action, Command};
use crate::events::Event;
use crate::letterbox::{Letterbox, PixelRect, Preparer};
use crate::models::{ModelFiles, discover};
use crate::output;
use crate::tensors::{SLOTS, TensorBuffer};
use crate::worker::{Reply, Request, Worker, WorkerConfig};

/// Everything fixed for the life of the process.
pub struct Settings {
    pub ring: RingArg,
    pub instance_id: String,
    pub room_id: String,
    pub model_dir: std::path::PathBuf,
    pub size: ModelSize,
    pub threshold_320: u64,
    pub worker: WorkerConfig,
    /// An infer without a reply for this long means the worker hangs.
    pub worker_timeout: Duration,
    pub status_interval: Duration,
    /// Auto-focus on at start, with these parameters.
    pub auto_focus: bool,
    /// Start paused (oriond resumes once it re-applied the desired state).
    pub paused: bool,
    pub auto_focus_params: crate::autofocus::Params,
}

/// A frame on its way through a tensor slot.
struct Job {
    id: u64,
    meta: FrameMeta,
    lb: Letterbox,
    region: NormRect,
    roi_source: RoiSource,
    started: Instant,
    prep_ms: f64,
    sent: Option<Instant>,
}

enum Slot {
    Free,
    Prepared(Job),
    InFlight(Job),
}

/// A model change waiting for the worker's `model_loaded`.
struct PendingSwap {
    id: u64,
    files: ModelFiles,
    command: Command,
}

#[derive(Default)]
struct Counters {
    results: u64,
    torn: u64,
    worker_errors: u64,
    dropped_in_flight: u64,
    worker_restarts: u64,
    last_latency_ms: f64,
    recent: std::collections::VecDeque<Instant>,
}

const WORKER_BACKOFF_MIN: Duration = Duration::from_millis(500);
const WORKER_BACKOFF_MAX: Duration = Duration::from_secs(10);

pub struct Bridge {
    s: Settings,
    ring: ShmSource,
    reader: RingReader,
    tensors: TensorBuffer,
    preparer: Preparer,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    worker: Option<Worker>,
    generation: u64,
    ready: bool,
    worker_started: Instant,
    sizes: Vec<u32>,
    restart_at: Option<Instant>,
    backoff: Backoff,
    /// The current worker delivered a result: it was healthy, so its death is a crash to
    /// recover from at once, not a crash loop to back off from.
    worker_healthy: bool,
    model: ModelFiles,
    pending: Option<PendingSwap>,
    paused: bool,
    rois: Option<RoiSet>,
    autofocus: AutoFocus,
    auto_focus: bool,
    /// Asks the frame watcher for one wake-up when a frame newer than the given one exists.
    arm: Option<Sender<u64>>,
    armed: bool,
    taken_seq: u64,
    slots: [Slot; SLOTS],
    next_id: u64,
    counters: Counters,
    last_status: Instant,
}

impl Bridge {
    pub fn new(
        s: Settings,
        ring: ShmSource,
        reader: RingReader,
        tensors: TensorBuffer,
    ) -> Result<Self> {
        let paused = s.paused;
        let model = discover(&s.model_dir, s.size)?;
        let (events_tx, events) = channel();
        let (autofocus, auto_focus) = (AutoFocus::new(s.auto_focus_params), s.auto_focus);
        Ok(Self {
            s,
            ring,
            reader,
            tensors,
            preparer: Preparer::default(),
            events_tx,
            events,
            worker: None,
            generation: 0,
            ready: false,
            worker_started: Instant::now(),
            sizes: Vec::new(),
            restart_at: Some(Instant::now()),
            backoff: Backoff::new(WORKER_BACKOFF_MIN, WORKER_BACKOFF_MAX, Duration::MAX),
            worker_healthy: false,
            model,
            pending: None,
            paused,
            rois: None,
            autofocus,
            auto_focus,
            arm: None,
            armed: false,
            taken_seq: 0,
            slots: [Slot::Free, Slot::Free],
            next_id: 1,
            counters: Counters::default(),
            last_status: Instant::now(),
        })
    }

    /// Runs until `shutdown` is set.
    pub fn run(&mut self, shutdown: &Arc<AtomicBool>) -> Result<()> {
        self.arm = Some(spawn_frame_watcher(
            self.ring.clone(),
            self.events_tx.clone(),
        )?);
        commands::spawn_reader(self.events_tx.clone(), shutdown.clone())?;
        while !shutdown.load(Ordering::Relaxed) {
            match self.events.recv_timeout(Duration::from_millis(100)) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.supervise_worker();
            self.progress();
            self.report_status(false);
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Frame(_) => self.armed = false,
            Event::Command(cmd) => self.command(cmd),
            Event::Worker { generation, .. } | Event::WorkerGone { generation, .. }
                if generation != self.generation => {}
            Event::Worker {
                reply: Ok(reply), ..
            } => self.reply(reply),
            Event::Worker {
                reply: Err(err), ..
            } => {
                self.counters.worker_errors += 1;
                tracing::warn!(error = format!("{err:#}"), "bad reply from the worker");
            }
            Event::WorkerGone { why, .. } => self.worker_died(&why),
        }
    }

    // ---- frames ---------------------------------------------------------------------------

    /// Prepares the newest frame into a free slot, and sends a prepared one if the worker
    /// is idle.
    fn progress(&mut self) {
        if !self.ready {
            return;
        }
        let has_prepared = self.slots.iter().any(|s| matches!(s, Slot::Prepared(_)));
        if !self.paused
            && !has_prepared
            && let Some(free) = self.slots.iter().position(|s| matches!(s, Slot::Free))
        {
            if self.reader.latest_seq() > self.taken_seq {
                self.prepare(free);
            } else if !self.armed
                && let Some(arm) = &self.arm
            {
                // Wake us for the next frame; until then the watcher sleeps on the ring.
                self.armed = arm.send(self.taken_seq).is_ok();
            }
        }
        if let Some(index) = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Prepared(_)))
        {
            self.send(index);
        }
    }

    fn prepare(&mut self, index: usize) {
        let started = Instant::now();
        let (threshold, has_320) = (self.s.threshold_320, self.sizes.contains(&320));
        // External ROIs, else the auto-focus ROI, else the whole frame.
        let (region, roi_source) = match (
            &self.rois,
            self.auto_focus.then(|| self.autofocus.roi()).flatten(),
        ) {
            (Some(rois), _) => (rois.union(), RoiSource::External),
            (None, Some(roi)) => (roi, RoiSource::AutoFocus),
            (None, None) => (NormRect::FULL, RoiSource::Full),
        };
        let slot = self.tensors.slot_mut(index);
        let preparer = &mut self.preparer;
        let read = self.reader.read_latest_with(|meta, payload| {
            let (w, h) = (meta.geometry.width(), meta.geometry.height());
            let crop = PixelRect::from_norm(&region, w, h);
            let imgsz = if has_320 && crop.area() <= threshold {
                320
            } else {
                640
            };
            let lb = Letterbox::new(crop, imgsz);
            (lb, preparer.prepare(meta, payload, &lb, slot))
        });
        match read {
            Ok(Read::Frame((meta, (lb, Ok(()))))) => {
                self.taken_seq = meta.seq;
                if roi_source == RoiSource::AutoFocus {
                    self.autofocus.used();
                }
                let id = self.next_id;
                self.next_id += 1;
                let prep_ms = started.elapsed().as_secs_f64() * 1e3;
                self.slots[index] = Slot::Prepared(Job {
                    id,
                    meta,
                    lb,
                    region,
                    roi_source,
                    started,
                    prep_ms,
                    sent: None,
                });
            }
            Ok(Read::Frame((meta, (_, Err(err))))) => {
                self.taken_seq = meta.seq;
                tracing::error!(%err, seq = meta.seq, "frame cannot be prepared");
            }
            Ok(Read::Torn { .. }) => self.counters.torn += 1,
            Ok(Read::NoFrame) => {}
            Err(err) => {
                self.taken_seq = self.reader.latest_seq();
                tracing::error!(%err, "ring read failed");
            }
        }
    }

    fn send(&mut self, index: usize) {
        let Slot::Prepared(mut job) = std::mem::replace(&mut self.slots[index], Slot::Free) else {
            return;
        };
        let request = Request::Infer {
            id: job.id,
            slot: index,
            imgsz: job.lb.imgsz,
            frame_seq: job.meta.seq,
        };
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        if let Err(err) = worker.send(&request) {
            tracing::warn!(error = format!("{err:#}"), "cannot send to the worker");
            self.counters.dropped_in_flight += 1;
            return;
        }
        job.sent = Some(Instant::now());
        tracing::trace!(
            id = job.id,
            seq = job.meta.seq,
            waited_ms = job.started.elapsed().as_secs_f64() * 1e3,
            "infer sent"
        );
        self.slots[index] = Slot::InFlight(job);
    }

    fn take_in_flight(&mut self, id: u64) -> Option<Job> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::InFlight(j) if j.id == id))?;
        let Slot::InFlight(job) = std::mem::replace(&mut self.slots[index], Slot::Free) else {
            return None;
        };
        // The worker now starts the job that waited behind this one: its clock starts now.
        for slot in &mut self.slots {
            if let Slot::InFlight(next) = slot {
                next.sent = Some(Instant::now());
            }
        }
        Some(job)
    }

    // ---- worker replies -------------------------------------------------------------------

    fn reply(&mut self, reply: Reply) {
        match reply {
            Reply::Ready {
                pid, size, sizes, ..
            } => {
                tracing::info!(pid, model = size, ?sizes, "worker ready");
                self.ready = true;
                self.sizes = sizes;
                // oriond waits for this to count the detector as ready.
                self.report_status(true);
            }
            Reply::Result {
                id,
                imgsz,
                model_size,
                boxes,
                scores,
                classes,
                timing,
            } => {
                let Some(job) = self.take_in_flight(id) else {
                    return;
                };
                tracing::trace!(id, inference_ms = timing.inference_ms, "result");
                self.worker_healthy = true;
                let detections = map_boxes(&job, &boxes, &scores, &classes);
                if self.auto_focus && self.rois.is_none() {
                    self.autofocus.update(&normalized(&job, &detections));
                }
                let worker_ms = job.sent.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
                let message = self.message(&job, detections, imgsz, &model_size, timing, worker_ms);
                self.counters.results += 1;
                self.counters.last_latency_ms = message.latency_ms;
                let now = Instant::now();
                self.counters.recent.push_back(now);
                while self
                    .counters
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(5))
                {
                    self.counters.recent.pop_front();
                }
                output::emit_detection(&message);
            }
            Reply::ModelLoaded {
                id,
                size,
                sizes,
                load_ms,
            } => {
                let Some(pending) = self.pending.take_if(|p| p.id == id) else {
                    return;
                };
                tracing::info!(model = size, load_ms, "model swapped");
                self.model = pending.files;
                self.sizes = sizes.clone();
                output::emit(&commands::ack(
                    &pending.command,
                    Ok(json!({"size": size, "sizes": sizes, "load_ms": load_ms})),
                ));
            }
            Reply::Error { id, kind, message } => {
                if let Some(pending) = self.pending.take_if(|p| Some(p.id) == id) {
                    // Rollback: the desired model stays what it was.
                    tracing::warn!(%message, "model change failed, keeping {}", self.model.size);
                    output::emit(&commands::ack(
                        &pending.command,
                        Err(format!(
                            "model {} not loaded: {message}",
                            pending.files.size
                        )),
                    ));
                } else if let Some(job) = id.and_then(|id| self.take_in_flight(id)) {
                    self.counters.worker_errors += 1;
                    tracing::warn!(seq = job.meta.seq, %kind, %message, "inference failed");
                } else {
                    self.counters.worker_errors += 1;
                    tracing::warn!(%kind, %message, "worker error");
                }
            }
            Reply::Pong { .. } => {}
        }
    }

    fn message(
        &self,
        job: &Job,
        detections: Vec<Detection>,
        imgsz: u32,
        model_size: &str,
        t: crate::worker::WorkerTiming,
        worker_ms: f64,
    ) -> DetectionMessage {
        let now_mono = monotonic_ns();
        let latency_ms = now_mono.saturating_sub(job.meta.monotonic_ns) as f64 / 1e6;
        let total_ms = job.started.elapsed().as_secs_f64() * 1e3;
        let model_size = model_size.parse().unwrap_or(self.model.size);
        DetectionMessage {
            kind: DetectionMessage::KIND.into(),
            instance_id: self.s.instance_id.clone(),
            room_id: self.s.room_id.clone(),
            frame_seq: job.meta.seq,
            capture_ts: rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_nanos(job.meta.realtime_ns),
            ),
            publish_ts: rfc3339(SystemTime::now()),
            latency_ms,
            data: DetectionData {
                count: detections.len(),
                detections,
                metadata: DetectionMetadata {
                    frame_width: job.meta.geometry.width(),
                    frame_height: job.meta.geometry.height(),
                    model_size,
                    imgsz,
                    roi_source: job.roi_source,
                    region: job.region,
                },
            },
            timing: Timing {
                preprocess_ms: job.prep_ms + t.preprocess_ms,
                inference_ms: t.inference_ms,
                postprocess_ms: t.postprocess_ms
                    + (worker_ms - t.preprocess_ms - t.inference_ms - t.postprocess_ms).max(0.0),
                total_ms,
            },
            suggested_roi: if self.auto_focus {
                self.autofocus.roi()
            } else {
                None
            },
        }
    }

    // ---- the worker process ---------------------------------------------------------------

    fn supervise_worker(&mut self) {
        let hung = self.slots.iter().any(|s| matches!(s, Slot::InFlight(j) if j.sent.is_some_and(|t| t.elapsed() > self.s.worker_timeout)));
        if hung {
            self.worker_died(&format!("no reply within {:?}", self.s.worker_timeout));
        }
        if self.worker.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            self.restart_at = None;
            self.generation += 1;
            let spawned = self
                .tensors
                .share_read_only()
                .map_err(anyhow::Error::from)
                .and_then(|fd| {
                    Worker::spawn(
                        &self.s.worker,
                        &self.model,
                        fd,
                        self.generation,
                        self.events_tx.clone(),
                    )
                });
            match spawned {
                Ok(worker) => {
                    tracing::info!(pid = worker.pid(), generation = self.generation, model = %self.model.size, "worker started");
                    self.worker = Some(worker);
                    self.worker_started = Instant::now();
                }
                Err(err) => self.worker_died(&format!("{err:#}")),
            }
        }
    }

    fn worker_died(&mut self, why: &str) {
        self.worker = None; // kills and reaps it if it is still there
        self.ready = false;
        // A worker that inferred (or ran a while) is restarted at once; one that dies before
        // its first result is in a crash loop and waits 0.5 s, doubling to 10 s.
        let delay =
            if self.worker_healthy || self.worker_started.elapsed() > Duration::from_secs(30) {
                self.backoff.reset();
                Duration::ZERO
            } else {
                self.backoff.after_run(Duration::ZERO)
            };
        self.worker_healthy = false;
        for slot in &mut self.slots {
            if matches!(slot, Slot::InFlight(_)) {
                self.counters.dropped_in_flight += 1;
            }
            *slot = Slot::Free;
        }
        if let Some(pending) = self.pending.take() {
            output::emit(&commands::ack(
                &pending.command,
                Err(format!(
                    "worker restarted while loading model {}; still {}",
                    pending.files.size, self.model.size
                )),
            ));
        }
        self.counters.worker_restarts += 1;
        tracing::warn!(
            why,
            retry_in_ms = delay.as_millis() as u64,
            "worker gone, restarting"
        );
        self.restart_at = Some(Instant::now() + delay);
    }

    // ---- commands and status ----------------------------------------------------------------

    fn command(&mut self, cmd: Command) {
        let result = match &cmd.action {
            Err(e) => Err(e.clone()),
            Ok(Action::Pause) => {
                self.paused = true;
                Ok(json!({"paused": true}))
            }
            Ok(Action::Resume) => {
                self.paused = false;
                Ok(json!({"paused": false}))
            }
            Ok(Action::GetStatus) => Ok(self.status()),
            Ok(Action::SetRois(rois)) => {
                self.rois = Some(rois.clone());
                Ok(json!({"rois": rois, "region": rois.union()}))
            }
            Ok(Action::ClearRois) => {
                self.rois = None;
                Ok(json!({"rois": []}))
            }
            Ok(Action::SetAutoFocus(update)) => self.autofocus.params.with(update).map(|p| {
                // Takes effect on the next frame; history is kept, no frame is lost.
                self.autofocus.params = p;
                json!(p)
            }),
            Ok(Action::GetAutoFocus) => {
                Ok(json!({"enabled": self.auto_focus, "params": self.autofocus.params}))
            }
            Ok(Action::EnableAutoFocus) => {
                self.auto_focus = true;
                Ok(json!({"enabled": true}))
            }
            Ok(Action::DisableAutoFocus) => {
                self.auto_focus = false;
                self.autofocus.clear_history();
                Ok(json!({"enabled": false}))
            }
            Ok(Action::ClearAutoFocusHistory) => {
                self.autofocus.clear_history();
                Ok(json!({"cleared": true}))
            }
            Ok(Action::GetAutoFocusStats) => Ok(json!(self.autofocus.stats())),
            Ok(Action::GetRois) => {
                Ok(json!({"rois": self.rois.as_ref().map_or(&[][..], RoiSet::rois)}))
            }
            Ok(Action::SetModelSize(size)) => match self.begin_swap(*size, &cmd) {
                Ok(Some(done)) => Ok(done),
                Ok(None) => return, // acknowledged when the worker answers
                Err(e) => Err(e),
            },
            Ok(other @ (Action::SetRate(_) | Action::RestartProcess(_) | Action::Shutdown)) => Err(
                format!("{} is oriond's to handle, not the detector's", other.name()),
            ),
        };
        output::emit(&commands::ack(&cmd, result));
    }

    fn begin_swap(&mut self, size: ModelSize, cmd: &Command) -> Result<Option<Value>, String> {
        if self.pending.is_some() {
            return Err("a model change is already in progress".into());
        }
        let files = discover(&self.s.model_dir, size).map_err(|e| e.to_string())?;
        if files == self.model {
            return Ok(Some(
                json!({"size": size, "sizes": self.sizes, "unchanged": true}),
            ));
        }
        let (Some(worker), true) = (self.worker.as_mut(), self.ready) else {
            return Err("the worker is restarting; try again".into());
        };
        let id = self.next_id;
        self.next_id += 1;
        let request = Request::LoadModel {
            id,
            size: size.to_string(),
            path_640: files.path_640.to_string_lossy().into_owned(),
            path_320: files
                .path_320
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        };
        worker
            .send(&request)
            .map_err(|e| format!("cannot reach the worker: {e:#}"))?;
        self.pending = Some(PendingSwap {
            id,
            files,
            command: cmd.clone(),
        });
        Ok(None)
    }

    fn status(&self) -> Value {
        let c = &self.counters;
        let fps = match (c.recent.front(), c.recent.back()) {
            (Some(a), Some(b)) if c.recent.len() >= 2 && b > a => {
                (c.recent.len() - 1) as f64 / b.duration_since(*a).as_secs_f64()
            }
            _ => 0.0,
        };
        let ring = self.reader.stats();
        json!({
            "state": if !self.ready { "starting_worker" } else if self.paused { "paused" } else { "running" },
            "paused": self.paused,
            "attention_rois": self.rois.as_ref().map_or(&[][..], RoiSet::rois),
            "auto_focus": {"enabled": self.auto_focus, "strategy": self.autofocus.params.strategy, "roi": self.autofocus.roi()},
            "model": self.model.size,
            "sizes_loaded": self.sizes,
            "loading": self.pending.as_ref().map(|p| p.files.size),
            "worker_pid": self.worker.as_ref().map(Worker::pid),
            "worker_restarts": c.worker_restarts,
            "results": c.results,
            "inference_fps": fps,
            "last_latency_ms": c.last_latency_ms,
            "frames_skipped": ring.skipped,
            "frames_torn": c.torn,
            "worker_errors": c.worker_errors,
            "dropped_in_flight": c.dropped_in_flight,
        })
    }

    fn report_status(&mut self, force: bool) {
        if force || self.last_status.elapsed() >= self.s.status_interval {
            self.last_status = Instant::now();
            let mut status = self.status();
            status["type"] = json!("detector_status");
            output::emit(&status);
        }
    }
}

/// Worker boxes (xyxy, tensor pixels) → detections in frame pixels, clipped to the frame.
fn map_boxes(job: &Job, boxes: &[f32], scores: &[f32], classes: &[String]) -> Vec<Detection> {
    let (fw, fh) = (
        f64::from(job.meta.geometry.width()),
        f64::from(job.meta.geometry.height()),
    );
    boxes
        .chunks_exact(4)
        .zip(scores)
        .zip(classes)
        .filter_map(|((b, &score), class)| {
            let (x1, y1) = job.lb.to_frame(f64::from(b[0]), f64::from(b[1]));
            let (x2, y2) = job.lb.to_frame(f64::from(b[2]), f64::from(b[3]));
            let (x1, y1, x2, y2) = (
                x1.clamp(0.0, fw),
                y1.clamp(0.0, fh),
                x2.clamp(0.0, fw),
                y2.clamp(0.0, fh),
            );
            (x2 > x1 && y2 > y1).then(|| Detection {
                bbox: BBox {
                    x: x1 as f32,
                    y: y1 as f32,
                    width: (x2 - x1) as f32,
                    height: (y2 - y1) as f32,
                },
                confidence: score,
                class: class.clone(),
            })
        })
        .collect()
}

/// Detections as boxes normalized to the frame, for auto-focus.
fn normalized(job: &Job, detections: &[Detection]) -> Vec<CBox> {
    let (fw, fh) = (
        f64::from(job.meta.geometry.width()),
        f64::from(job.meta.geometry.height()),
    );
    detections
        .iter()
        .map(|d| {
            let b = d.bbox;
            CBox::from_corners(
                f64::from(b.x) / fw,
                f64::from(b.y) / fh,
                f64::from(b.x + b.width) / fw,
                f64::from(b.y + b.height) / fh,
            )
        })
        .collect()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Wakes the loop once per request: each `u64` received means "tell me when a frame newer
/// than this one is published". Between requests it sleeps on the channel, so frames the
/// bridge has no slot for cost no wake-ups; while armed it sleeps on the ring's futex.
fn spawn_frame_watcher(ring: ShmSource, events: Sender<Event>) -> Result<Sender<u64>> {
    let reader = RingReader::attach(ring)?;
    let (arm, requests) = channel::<u64>();
    std::thread::Builder::new()
        .name("frames".into())
        .spawn(move || {
            while let Ok(after) = requests.recv() {
                loop {
                    if let Some(seq) = reader.wait_for_newer(after, Duration::from_secs(1)) {
                        if events.send(Event::Frame(seq)).is_err() {
                            return;
                        }
                        break;
                    }
                }
            }
        })?;
    Ok(arm)
}

//! The bridge loop: it sleeps until something happens — a frame it asked for, a worker
//! reply, a command — and then moves frames through the pipeline. By concern:
//! - [`pipeline`]: newest frame → letterboxed tensor slot → worker, results matched back;
//! - [`worker_link`]: the worker process: generations, readiness, restarts, model swaps;
//! - [`attention`]: where to look (ROIs, auto-focus, full frame);
//! - [`results`]: a result as the detection message.

mod attention;
mod pipeline;
mod results;
mod worker_link;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::Result;
use orion_config::models::discover;
use orion_process::rate::RateWindow;
use orion_process::ring_arg::RingArg;
use orion_protocol::command::{AckError, Command, ErrorKind};
use orion_protocol::{Action, DetectorState, DetectorStatus, InstanceId, ModelSize};
use orion_ring::{RingReader, ShmSource, monotonic_ns};
use serde_json::{Value, json};

use self::attention::Attention;
use self::pipeline::{Pipeline, Prepared};
use self::results::{Inference, Origin};
use self::worker_link::{Loader, SwapOutcome, WorkerLink};
use crate::io;
use crate::tensors::TensorBuffer;
use crate::worker::{Reply, Request, Start, Worker, WorkerConfig, WorkerEvent};

/// Everything fixed for the life of the process.
pub struct Settings {
    pub ring: RingArg,
    pub instance_id: InstanceId,
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
    /// Keep a warm spare worker (see `worker_link`).
    pub spare_worker: bool,
    /// Stand by until oriond says take over: the worker loads (at a low CPU priority),
    /// nothing is inferred, no spare is kept; the status says `standby` once it is ready.
    pub standby: bool,
    pub auto_focus_params: crate::autofocus::Params,
    /// While a region is used, look at the whole frame at least this often (`None`: never
    /// forced; only the bench's "before" measurement turns it off).
    pub full_look: Option<Duration>,
}

/// What the loop reacts to.
enum Event {
    /// A frame newer than the one the pipeline waited for was published.
    Frame,
    /// Worker `generation` said something.
    Worker(u64, WorkerEvent),
    Command(Command),
    /// oriond: the detector this one stands by for died; serve in its place.
    TakeOver,
    /// oriond's memory gate: a spare worker may run (or not).
    StandIns(bool),
}

#[derive(Default)]
struct Counters {
    results: u64,
    torn: u64,
    worker_errors: u64,
    dropped_in_flight: u64,
    swaps_timed_out: u64,
    last_result_latency_ms: f64,
    result_latency: orion_protocol::histogram::LatencyHistogram,
}

/// Longest a model load may take before it is given up (oriond's own limit for the
/// command is longer, so the answer comes from here: `orion_protocol::timeouts`).
const SWAP_TIMEOUT: Duration = orion_protocol::timeouts::MODEL_SWAP;
/// The request id of the `serve` told at a take-over (inference ids count up from 1, model
/// loads from 2^62).
const SERVE_ID: u64 = 1 << 61;
/// A spare still starting or loading a new model at niceness 19 after this long is raised
/// to 10 (either takes one to two seconds where the worker leaves a core idle part of the
/// time).
const SPARE_RAISE_AFTER: Duration = Duration::from_secs(4);

pub struct Bridge {
    s: Settings,
    pipeline: Pipeline,
    link: WorkerLink,
    attention: Attention,
    paused: bool,
    standby: bool,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    counters: Counters,
    fps: RateWindow,
    last_status: Instant,
    /// It told oriond it is ready (once per process; see `report_status`).
    said_ready: bool,
    /// A standby's OOM score before it marked itself first to go (given back on taking
    /// over; `orion_process::oom`).
    oom_before: Option<i32>,
}

impl Bridge {
    pub fn new(
        s: Settings,
        ring: ShmSource,
        reader: RingReader,
        tensors: TensorBuffer,
    ) -> Result<Self> {
        let model = discover(&s.model_dir, s.size)?;
        let s_standby = s.standby;
        let (events_tx, events) = channel();
        let frames = events_tx.clone();
        let pipeline = Pipeline::new(ring, reader, tensors, move |_| {
            frames.send(Event::Frame).is_ok()
        })?;
        Ok(Self {
            link: WorkerLink::new(
                model,
                s.spare_worker && !s.standby,
                s.standby,
                Instant::now(),
            ),
            attention: Attention::new(s.auto_focus, s.auto_focus_params, s.full_look),
            paused: s.paused,
            standby: s.standby,
            s,
            pipeline,
            events_tx,
            events,
            counters: Counters::default(),
            fps: RateWindow::new(Duration::from_secs(5)),
            said_ready: false,
            last_status: Instant::now(),
            oom_before: s_standby.then(orion_process::oom::first_to_go).flatten(),
        })
    }

    /// Runs until `shutdown` is set.
    pub fn run(&mut self, shutdown: &Arc<AtomicBool>) -> Result<()> {
        let commands = self.events_tx.clone();
        io::read_commands(shutdown.clone(), move |m| {
            let _ = commands.send(match m {
                io::FromOriond::Command(cmd) => Event::Command(cmd),
                io::FromOriond::TakeOver => Event::TakeOver,
                io::FromOriond::StandIns { allowed } => Event::StandIns(allowed),
            });
        })?;
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
            Event::Frame => self.pipeline.woken(),
            Event::Command(cmd) => self.command(cmd),
            Event::TakeOver => self.take_over(),
            Event::StandIns(allowed) => {
                if self.link.spare_shed() == allowed {
                    match allowed {
                        true => tracing::info!("memory allows a spare worker again"),
                        false => tracing::warn!("spare worker shed: the box is short of memory"),
                    }
                    self.link.shed_spare(!allowed);
                    self.report_status(true);
                }
            }
            Event::Worker(generation, e) if generation != self.link.generation() => {
                // The spare's, or a replaced worker's (ignored).
                if let Some(outcome) = self.link.spare_event(generation, &e, Instant::now()) {
                    self.swap_ended(outcome);
                }
            }
            Event::Worker(_, WorkerEvent::Reply(Ok(reply))) => self.reply(reply),
            Event::Worker(_, WorkerEvent::Reply(Err(err))) => {
                self.counters.worker_errors += 1;
                tracing::warn!(error = format!("{err:#}"), "bad reply from the worker");
            }
            Event::Worker(_, WorkerEvent::Gone(why)) => self.worker_died(&why),
        }
    }

    /// Prepares the newest frame into a free slot, and hands a prepared one to the worker.
    fn progress(&mut self) {
        if !self.link.is_ready() {
            return;
        }
        if self.link.switch_pending() && self.pipeline.in_flight() == 0 {
            // The spare has the new model and the old worker answered what it had: the
            // spare takes its place.
            if let Some(outcome) = self.link.promote_loaded_spare(Instant::now()) {
                self.swap_ended(outcome);
            }
        }
        if !self.paused && !self.standby && !self.pipeline.has_prepared() {
            let now = Instant::now();
            let (region, source) = self.attention.region(now);
            let has_320 = self.link.next_sizes().contains(&320);
            match self
                .pipeline
                .prepare(region, source, self.s.threshold_320, has_320)
            {
                Prepared::Job(source) => self.attention.used(region, source, now),
                Prepared::Torn => self.counters.torn += 1,
                Prepared::Nothing => {}
            }
        }
        // Until the switch, the old worker gets nothing more; the next frame waits prepared.
        let switching = self.link.switch_pending();
        if let Some(worker) = self.link.worker_mut().filter(|_| !switching)
            && self.pipeline.send_prepared(worker) == Some(false)
        {
            self.counters.dropped_in_flight += 1;
        }
    }

    fn reply(&mut self, reply: Reply) {
        match reply {
            Reply::Ready {
                pid, size, sizes, ..
            } => {
                tracing::info!(pid, model = size, ?sizes, "worker ready");
                self.link.ready(sizes);
                // The report that shows it loaded, and with it the detector's Ready.
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
                let Some(job) = self.pipeline.take_in_flight(id) else {
                    return;
                };
                self.link.healthy();
                let detections = results::map_boxes(&job, &boxes, &scores, &classes);
                self.attention.observe(
                    job.region,
                    job.roi_source,
                    &results::normalized(&job, &detections),
                    Instant::now(),
                );
                let inference = Inference {
                    imgsz,
                    model_size: model_size.parse().unwrap_or(self.link.model().size),
                    timing: &timing,
                    worker_ms: job.sent.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3),
                };
                let origin = Origin {
                    instance_id: self.s.instance_id.as_str(),
                    room_id: &self.s.room_id,
                };
                let message = results::message(
                    &origin,
                    &job,
                    detections,
                    &inference,
                    self.attention.suggested(),
                );
                let now = monotonic_ns();
                self.counters.results += 1;
                let latency_ms = now.saturating_sub(job.meta.monotonic_ns) as f64 / 1e6;
                self.counters.last_result_latency_ms = latency_ms;
                self.counters.result_latency.observe(latency_ms);
                self.fps.record(now);
                io::detection(message, job.meta.realtime_ns);
            }
            Reply::ModelLoaded {
                id, sizes, load_ms, ..
            } => {
                if let Some(outcome) = self.link.swapped(id, sizes, load_ms) {
                    self.swap_ended(outcome);
                }
            }
            Reply::Error { id, kind, message } => {
                if let Some(outcome) = self.link.swap_failed(id, &message) {
                    // Rollback: the model stays what it was.
                    self.swap_ended(outcome);
                } else if let Some(job) = id.and_then(|id| self.pipeline.take_in_flight(id)) {
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

    fn supervise_worker(&mut self) {
        if self.pipeline.overdue(self.s.worker_timeout) {
            self.worker_died(&format!("no reply within {:?}", self.s.worker_timeout));
        }
        if let Some(what) = self
            .link
            .raise_starved_spare(SPARE_RAISE_AFTER, Instant::now())
        {
            tracing::info!(
                after_s = SPARE_RAISE_AFTER.as_secs(),
                what,
                "the spare found too little idle CPU; raised to niceness 10"
            );
        }
        // A load that never ends: answered, and the worker restarted on the model it has
        // (else it could still switch later, behind everyone's back).
        if let Some((outcome, restart_worker)) =
            self.link.overdue_swap(SWAP_TIMEOUT, Instant::now())
        {
            self.counters.swaps_timed_out += 1;
            self.swap_ended(outcome);
            if let Some(why) = restart_worker {
                self.worker_died(&why);
            }
        }
        let tensors = self.pipeline.tensors();
        let config = &self.s.worker;
        let events = &self.events_tx;
        let standby = self.standby;
        let started = self
            .link
            .start_if_due(Instant::now(), |model, stand_in, generation| {
                let tx = events.clone();
                // While standing by, the link keeps no spare: a stand-in is the standby's
                // own worker, which loads its model only on taking over.
                let start = match (stand_in, standby) {
                    (false, _) => Start::Serving,
                    (true, false) => Start::Spare,
                    (true, true) => Start::Deferred,
                };
                tensors
                    .share_read_only()
                    .map_err(anyhow::Error::from)
                    .and_then(|fd| {
                        Worker::spawn(config, model, fd, start, move |e| {
                            tx.send(Event::Worker(generation, e)).is_ok()
                        })
                    })
                    .map_err(|err| format!("{err:#}"))
            });
        if let Err(why) = started {
            self.worker_died(&why);
        }
    }

    /// A model change ended, whoever did it and however it ended: answered here.
    fn swap_ended(&mut self, outcome: SwapOutcome) {
        let size = outcome.swap().files.size;
        match &outcome {
            SwapOutcome::Loaded { swap, load_ms, .. } if swap.loader == Loader::Spare => {
                // Nothing was in flight (see `progress`); this frees the prepared slot.
                self.counters.dropped_in_flight += self.pipeline.abandon() as u64;
                tracing::info!(model = %size, load_ms, "model swapped (loaded by the spare)");
            }
            SwapOutcome::Loaded { load_ms, .. } => {
                tracing::info!(model = %size, load_ms, "model swapped");
            }
            SwapOutcome::Failed { why, .. } => {
                tracing::warn!(%why, "model change failed, keeping {}", self.link.model().size);
            }
        }
        io::ack(&outcome.swap().command, outcome.answer());
        if matches!(&outcome, SwapOutcome::Loaded { swap, .. } if swap.loader == Loader::Spare) {
            self.report_status(true);
        }
    }

    /// The standby becomes the detector: the spare may start once results flow; oriond
    /// re-applies the desired state (and resumes) on the report that is not `standby`.
    fn take_over(&mut self) {
        if !self.standby {
            return;
        }
        self.standby = false;
        if let Some(before) = self.oom_before.take()
            && let Err(err) = orion_process::oom::restore(before)
        {
            tracing::warn!("cannot give back the OOM score on taking over: {err}");
        }
        self.link.serve(self.s.spare_worker);
        // Its worker loads the model now, while the first frame is on its way.
        if let Some(worker) = self.link.worker_mut()
            && let Err(err) = worker.send(&Request::Serve { id: SERVE_ID })
        {
            tracing::warn!("cannot tell the worker to serve: {err:#}");
        }
        tracing::info!(
            worker_pid = self.link.pid(),
            ready = self.link.is_ready(),
            "taking over from the detector that died"
        );
        self.report_status(true);
    }

    fn worker_died(&mut self, why: &str) {
        self.counters.dropped_in_flight += self.pipeline.abandon() as u64;
        let (outcome, delay) = self.link.died(Instant::now());
        if delay.is_none() {
            // The spare took over: nothing to wait for.
            self.report_status(true);
        }
        if let Some(outcome) = outcome {
            self.swap_ended(outcome);
        }
        match delay {
            None => tracing::warn!(why, "worker gone; the spare took over"),
            Some(delay) => tracing::warn!(
                why,
                retry_in_ms = delay.as_millis() as u64,
                "worker gone, restarting"
            ),
        }
    }

    fn command(&mut self, cmd: Command) {
        let action = match &cmd.action {
            Ok(a) => a.clone(),
            Err(e) => return io::ack(&cmd, Err(e.clone())),
        };
        if let Some(result) = self.attention.command(&action) {
            return io::ack(&cmd, result);
        }
        let result = match action {
            // A repeat is harmless; `changed` lets a client tell "already paused".
            Action::Pause | Action::Resume => {
                let paused = action == Action::Pause;
                let changed = self.paused != paused;
                self.paused = paused;
                Ok(json!({"paused": paused, "changed": changed}))
            }
            Action::GetStatus => {
                serde_json::to_value(self.status()).map_err(|e| AckError::from(e.to_string()))
            }
            Action::SetModelSize(size) => match self.begin_swap(size, &cmd) {
                Ok(Some(done)) => Ok(done),
                Ok(None) => return, // acknowledged when the worker answers
                Err(e) => Err(e),
            },
            other => Err(AckError::new(
                ErrorKind::Refused,
                format!("{} is oriond's to handle, not the detector's", other.name()),
            )),
        };
        io::ack(&cmd, result);
    }

    fn begin_swap(&mut self, size: ModelSize, cmd: &Command) -> Result<Option<Value>, AckError> {
        let files = discover(&self.s.model_dir, size)
            .map_err(|e| AckError::new(ErrorKind::Failed, e.to_string()))?;
        self.link.begin_swap(files, cmd, Instant::now())
    }

    fn status(&mut self) -> DetectorStatus {
        let c = &self.counters;
        DetectorStatus {
            state: if !self.link.is_ready() {
                DetectorState::StartingWorker
            } else if self.standby {
                DetectorState::Standby
            } else if self.paused {
                DetectorState::Paused
            } else {
                DetectorState::Running
            },
            paused: self.paused,
            attention_rois: self.attention.rois().to_vec(),
            auto_focus: self.attention.status(),
            model: self.link.model().size,
            sizes_loaded: self.link.sizes().to_vec(),
            loading: self.link.loading(),
            worker_pid: self.link.pid(),
            worker_restarts: self.link.restarts,
            results: c.results,
            inference_fps: self.fps.rate(monotonic_ns()),
            last_result_latency_ms: c.last_result_latency_ms,
            result_latency: c.result_latency.clone(),
            frames_skipped: self.pipeline.frames_skipped(),
            frames_torn: c.torn,
            worker_errors: c.worker_errors,
            dropped_in_flight: c.dropped_in_flight,
            swaps_timed_out: c.swaps_timed_out,
            spare_worker_pid: self.link.spare_pid(),
            spare_worker_ready: self.link.spare_ready(),
            spare_takeovers: self.link.spare_takeovers,
            spare_shed: self.link.spare_shed(),
        }
    }

    fn report_status(&mut self, force: bool) {
        if force || self.last_status.elapsed() >= self.s.status_interval {
            self.last_status = Instant::now();
            let status = self.status();
            let serving = matches!(status.state, DetectorState::Paused | DetectorState::Running);
            io::status(status);
            // Ready once its worker has loaded and it serves (a standby: once it took
            // over), right after the first report that shows it.
            if serving && !self.said_ready {
                self.said_ready = true;
                io::ready();
            }
        }
    }
}

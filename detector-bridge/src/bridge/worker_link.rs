//! The conversation with the Python worker: which worker (generation) is current, whether
//! it is ready and healthy, its restarts (at once after a healthy run, backing off in a
//! crash loop), a model swap in progress, and the warm spare.
//!
//! The spare (`--spare-worker`) is a second worker with the current model already loaded
//! and nothing to do; when the worker dies it takes over at once (no interpreter start,
//! no imports, no session creation), and a new spare is started a little later. It is
//! started once the worker has delivered results, and replaced after a model change.

use std::time::{Duration, Instant};

use orion_config::models::ModelFiles;
use orion_process::backoff::Backoff;
use orion_protocol::ModelSize;
use orion_protocol::command::{AckError, Command, ErrorKind};
use serde_json::{Value, json};

use crate::tensors::TensorBuffer;
use crate::worker::{Reply, Request, Worker, WorkerConfig, WorkerEvent};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// How long after a worker (re)start or a model change the spare is (re)made: the load
/// competes with inference for the CPU, so not in the same moment.
const SPARE_DELAY: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Request ids of model loads (inference ids count up from 1).
const SWAP_IDS: u64 = 1 << 62;

/// A model change waiting for the worker's `model_loaded`.
pub struct Swap {
    pub id: u64,
    pub files: ModelFiles,
    pub command: Command,
    pub started: Instant,
    /// Loaded by the spare, which then replaces the worker: the worker serving frames
    /// never loads (a session build holds Python's GIL, which would stall its requests).
    pub via_spare: bool,
    /// The spare was raised to niceness 10 because the load took long.
    pub raised: bool,
}

/// What a reply of the spare means for the bridge.
pub enum SpareNews {
    Nothing,
    /// The spare loaded the swap's model: it is the worker now (the old one is gone, its
    /// frames in flight are to be abandoned); answer the swap.
    Swapped {
        swap: Swap,
        load_ms: f64,
    },
    /// The spare could not load it (the old model stays); answer the swap with `why`.
    SwapFailed {
        swap: Swap,
        why: String,
    },
}

/// A worker with the current model loaded, waiting to take over.
struct Spare {
    worker: Worker,
    generation: u64,
    model: ModelFiles,
    /// Its input sizes once it said ready.
    sizes: Option<Vec<u32>>,
    started: Instant,
    /// Raised to [`SPARE_RAISED_NICE`] because its start took long.
    raised: bool,
}

/// The niceness a spare that found no idle CPU is raised to (it starts at 19).
const SPARE_RAISED_NICE: i32 = 10;

pub struct WorkerLink {
    config: WorkerConfig,
    /// Keep a spare at all.
    keep_spare: bool,
    /// Start the next worker at a spare's low priority (a standby detector's: it restores
    /// its niceness on its first inference request, after the take-over).
    low_priority_start: bool,
    spare: Option<Spare>,
    /// When a spare may be started (after the worker proved healthy).
    spare_due: Option<Instant>,
    /// Worker deaths a ready spare took over.
    pub spare_takeovers: u64,
    /// The spare loaded the swap's model (its load time): it replaces the worker as soon
    /// as the worker has nothing in flight.
    spare_loaded: Option<f64>,
    worker: Option<Worker>,
    generation: u64,
    ready: bool,
    /// The worker delivered a result: its death is a crash to recover from at once.
    healthy: bool,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: Backoff,
    sizes: Vec<u32>,
    model: ModelFiles,
    swap: Option<Swap>,
    next_swap: u64,
    /// The last generation handed out (worker and spare alike).
    next_generation: u64,
    pub restarts: u64,
}

impl WorkerLink {
    pub fn new(
        config: WorkerConfig,
        model: ModelFiles,
        keep_spare: bool,
        low_priority_start: bool,
    ) -> Self {
        Self {
            config,
            keep_spare,
            low_priority_start,
            spare: None,
            spare_due: None,
            spare_takeovers: 0,
            spare_loaded: None,
            worker: None,
            generation: 0,
            ready: false,
            healthy: false,
            started: Instant::now(),
            restart_at: Some(Instant::now()),
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX, Duration::MAX),
            sizes: Vec::new(),
            model,
            swap: None,
            next_swap: SWAP_IDS,
            next_generation: 0,
            restarts: 0,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn worker_mut(&mut self) -> Option<&mut Worker> {
        self.worker.as_mut()
    }

    pub fn pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Worker::pid)
    }

    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    /// The input sizes of the worker the next frame goes to: the loaded spare's while it
    /// is about to take over (a frame prepared now waits for it).
    pub fn next_sizes(&self) -> &[u32] {
        match (&self.spare_loaded, &self.spare) {
            (Some(_), Some(spare)) => spare.sizes.as_deref().unwrap_or(&self.sizes),
            _ => &self.sizes,
        }
    }

    pub fn model(&self) -> &ModelFiles {
        &self.model
    }

    pub fn loading(&self) -> Option<ModelSize> {
        self.swap.as_ref().map(|s| s.files.size)
    }

    /// A standby detector took over: workers start at their normal priority from now on,
    /// and a spare is kept if `keep_spare`.
    pub fn serve(&mut self, keep_spare: bool) {
        self.keep_spare = keep_spare;
        self.low_priority_start = false;
    }

    /// The spare's pid, if one runs.
    pub fn spare_pid(&self) -> Option<u32> {
        self.spare.as_ref().map(|s| s.worker.pid())
    }

    /// A spare is loaded and could take over now.
    pub fn spare_ready(&self) -> bool {
        self.spare.as_ref().is_some_and(|s| s.sizes.is_some())
    }

    /// Starts a worker if one is due, and a spare if one is wanted; `on_event` gets their
    /// replies tagged with their generation.
    pub fn start_if_due(
        &mut self,
        tensors: &TensorBuffer,
        on_event: impl FnMut(u64, WorkerEvent) -> bool + Send + Clone + 'static,
    ) -> Result<(), String> {
        if self.worker.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            self.restart_at = None;
            let low = self.low_priority_start;
            let (worker, generation) = self.spawn(tensors, low, on_event.clone())?;
            tracing::info!(pid = worker.pid(), generation, model = %self.model.size, "worker started");
            self.worker = Some(worker);
            self.generation = generation;
            self.started = Instant::now();
            self.spare_due = None;
        }
        let want_spare = self.keep_spare
            && self.spare.is_none()
            && self.swap.is_none()
            && self.ready
            && self.healthy;
        if want_spare {
            let due = *self
                .spare_due
                .get_or_insert_with(|| Instant::now() + SPARE_DELAY);
            if Instant::now() >= due {
                // A spare that cannot start is not the worker's failure: try again later.
                match self.spawn(tensors, true, on_event) {
                    Ok((worker, generation)) => {
                        tracing::info!(pid = worker.pid(), generation, model = %self.model.size, "spare worker started");
                        self.spare = Some(Spare {
                            worker,
                            generation,
                            model: self.model.clone(),
                            sizes: None,
                            started: Instant::now(),
                            raised: false,
                        });
                    }
                    Err(why) => {
                        tracing::warn!(why, "spare worker not started");
                        self.spare_due = Some(Instant::now() + BACKOFF_MAX);
                    }
                }
            }
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        tensors: &TensorBuffer,
        spare: bool,
        mut on_event: impl FnMut(u64, WorkerEvent) -> bool + Send + 'static,
    ) -> Result<(Worker, u64), String> {
        self.next_generation += 1;
        let generation = self.next_generation;
        tensors
            .share_read_only()
            .map_err(anyhow::Error::from)
            .and_then(|fd| {
                Worker::spawn(&self.config, &self.model, fd, spare, move |e| {
                    on_event(generation, e)
                })
            })
            .map(|w| (w, generation))
            .map_err(|err| format!("{err:#}"))
    }

    /// An event of worker `generation` if that is the spare (else nothing happens).
    pub fn spare_event(&mut self, generation: u64, event: &WorkerEvent) -> SpareNews {
        let Some(spare) = self.spare.as_mut().filter(|s| s.generation == generation) else {
            return SpareNews::Nothing;
        };
        let swap_id = self.swap.as_ref().filter(|s| s.via_spare).map(|s| s.id);
        match event {
            WorkerEvent::Reply(Ok(Reply::Ready { pid, sizes, .. })) => {
                tracing::info!(pid, ?sizes, "spare worker ready");
                spare.sizes = Some(sizes.clone());
                SpareNews::Nothing
            }
            WorkerEvent::Reply(Ok(Reply::ModelLoaded {
                id, sizes, load_ms, ..
            })) if Some(*id) == swap_id => {
                // It becomes the worker once the old one has answered what it has
                // ([`WorkerLink::promote_loaded_spare`]): no frame in flight is lost.
                spare.sizes = Some(sizes.clone());
                self.spare_loaded = Some(*load_ms);
                SpareNews::Nothing
            }
            WorkerEvent::Reply(Ok(Reply::Error { id, message, .. })) if *id == swap_id => {
                let Some(swap) = self.swap.take() else {
                    return SpareNews::Nothing;
                };
                // What the spare holds now is not known: a new one, later.
                self.drop_spare();
                SpareNews::SwapFailed {
                    swap,
                    why: message.clone(),
                }
            }
            WorkerEvent::Gone(why) => {
                tracing::warn!(why, "spare worker gone; another later");
                self.spare = None;
                self.spare_loaded = None;
                self.spare_due = Some(Instant::now() + BACKOFF_MAX);
                match self.swap.take_if(|s| s.via_spare) {
                    Some(swap) => SpareNews::SwapFailed {
                        swap,
                        why: format!("the worker loading it exited ({why})"),
                    },
                    None => SpareNews::Nothing,
                }
            }
            _ => SpareNews::Nothing,
        }
    }

    /// The spare has loaded the swap's model: no new frame goes to the old worker.
    pub fn switch_pending(&self) -> bool {
        self.spare_loaded.is_some()
    }

    /// Makes the spare that loaded the swap's model the worker (call when the old one has
    /// nothing in flight); the swap to answer and its load time.
    pub fn promote_loaded_spare(&mut self) -> SpareNews {
        let Some(load_ms) = self.spare_loaded.take() else {
            return SpareNews::Nothing;
        };
        let (Some(swap), Some(spare)) = (self.swap.take(), self.spare.take()) else {
            return SpareNews::Nothing;
        };
        tracing::info!(pid = spare.worker.pid(), model = %swap.files.size, "the spare loaded the new model and becomes the worker");
        self.worker = Some(spare.worker); // the old one is killed and reaped
        self.generation = spare.generation;
        self.model = swap.files.clone();
        self.sizes = spare.sizes.unwrap_or_default();
        self.ready = true;
        self.healthy = false;
        self.started = Instant::now();
        self.spare_due = None;
        SpareNews::Swapped { swap, load_ms }
    }

    /// Drops the spare (its model is not the worker's any more); the next one waits
    /// [`SPARE_DELAY`] (not to load beside the first inferences of the new model).
    fn drop_spare(&mut self) {
        self.spare = None;
        self.spare_due = None;
        self.spare_loaded = None;
    }

    /// The worker said it is ready with these input sizes.
    pub fn ready(&mut self, sizes: Vec<u32>) {
        self.ready = true;
        self.sizes = sizes;
    }

    /// The worker inferred a frame.
    pub fn healthy(&mut self) {
        self.healthy = true;
    }

    /// The worker is gone (exited, hung, broke the protocol): a ready spare with the same
    /// model takes over at once; else it is restarted at once after a healthy run, or
    /// after a growing delay in a crash loop. Returns the swap it took with it and the
    /// delay (`None`: the spare took over).
    pub fn died(&mut self) -> (Option<Swap>, Option<Duration>) {
        self.worker = None; // kills and reaps it if it is still there
        self.ready = false;
        let swap = self.swap.take();
        if swap.as_ref().is_some_and(|s| s.via_spare) {
            // The spare was loading another model: not a worker for the current one.
            self.drop_spare();
        }
        let model = self.model.clone();
        if let Some(spare) = self
            .spare
            .take_if(|s| s.sizes.is_some() && s.model == model)
        {
            tracing::info!(pid = spare.worker.pid(), "the spare worker takes over");
            self.worker = Some(spare.worker);
            self.generation = spare.generation;
            self.sizes = spare.sizes.unwrap_or_default();
            self.ready = true;
            self.healthy = false;
            self.started = Instant::now();
            self.restart_at = None;
            self.spare_due = None;
            self.restarts += 1;
            self.spare_takeovers += 1;
            return (swap, None);
        }
        let delay = if self.healthy || self.started.elapsed() > Duration::from_secs(30) {
            self.backoff.reset();
            Duration::ZERO
        } else {
            self.backoff.after_run(Duration::ZERO)
        };
        self.healthy = false;
        self.restarts += 1;
        self.restart_at = Some(Instant::now() + delay);
        (swap, Some(delay))
    }

    /// Asks the worker to load `files` in the background; `Ok(Some)` if nothing changes.
    pub fn begin_swap(
        &mut self,
        files: ModelFiles,
        command: &Command,
    ) -> Result<Option<Value>, AckError> {
        if self.swap.is_some() {
            return Err(AckError::new(
                ErrorKind::Busy,
                "a model change is already in progress",
            ));
        }
        if files == self.model {
            return Ok(Some(
                json!({"size": files.size, "sizes": self.sizes, "unchanged": true}),
            ));
        }
        if self.worker.is_none() || !self.ready {
            return Err(AckError::new(
                ErrorKind::Unavailable,
                "the worker is restarting; try again",
            ));
        }
        // A ready spare loads it (then replaces the worker); else the worker itself does.
        let via_spare = self.spare_ready();
        let target = if via_spare {
            self.spare.as_mut().map(|s| &mut s.worker)
        } else {
            self.worker.as_mut()
        };
        let Some(worker) = target else {
            return Err(AckError::new(
                ErrorKind::Unavailable,
                "the worker is restarting; try again",
            ));
        };
        let id = self.next_swap;
        self.next_swap += 1;
        let request = Request::LoadModel {
            id,
            size: files.size.to_string(),
            path_640: files.path_640.to_string_lossy().into_owned(),
            path_320: files
                .path_320
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        };
        worker.send(&request).map_err(|e| {
            AckError::new(
                ErrorKind::Unavailable,
                format!("cannot reach the worker: {e:#}"),
            )
        })?;
        self.swap = Some(Swap {
            id,
            files,
            command: command.clone(),
            started: Instant::now(),
            via_spare,
            raised: false,
        });
        Ok(None)
    }

    /// The worker loaded the swap `id`: it is the model now.
    pub fn swapped(&mut self, id: u64, sizes: Vec<u32>) -> Option<Swap> {
        let swap = self.swap.take_if(|s| s.id == id && !s.via_spare)?;
        self.model = swap.files.clone();
        self.sizes = sizes;
        // The spare holds the old model: a new one, a little later.
        self.drop_spare();
        Some(swap)
    }

    /// A spare starts, and loads a swap's model, at niceness 19 (it takes almost only
    /// idle CPU, so the worker serving frames keeps its speed); on a box too busy to leave
    /// a core idle that could take very long, so a start or load still going after `after`
    /// is raised to niceness 10. What was raised now, if anything.
    pub fn raise_starved_spare(&mut self, after: Duration) -> Option<&'static str> {
        let spare = self.spare.as_mut()?;
        let what = if let Some(swap) = self
            .swap
            .as_mut()
            .filter(|s| s.via_spare && !s.raised && s.started.elapsed() >= after)
        {
            swap.raised = true;
            "loading the new model"
        } else if spare.sizes.is_none() && !spare.raised && spare.started.elapsed() >= after {
            spare.raised = true;
            "starting"
        } else {
            return None;
        };
        if let Err(e) = spare.worker.renice(SPARE_RAISED_NICE) {
            tracing::warn!(error = %e, "cannot raise the spare's priority");
        }
        Some(what)
    }

    /// The swap in progress if it has taken `limit` or longer.
    pub fn take_overdue_swap(&mut self, limit: Duration) -> Option<Swap> {
        self.swap.take_if(|s| s.started.elapsed() >= limit)
    }

    /// The worker could not load the swap `id` (the old model stays).
    pub fn swap_failed(&mut self, id: Option<u64>) -> Option<Swap> {
        self.swap.take_if(|s| Some(s.id) == id && !s.via_spare)
    }

    /// A swap through the spare that took too long: the spare goes (the worker never
    /// loaded anything, so it stays).
    pub fn give_up_spare_swap(&mut self) {
        self.drop_spare();
    }
}

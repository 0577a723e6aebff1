//! The conversation with the Python worker, as three small state machines the bridge
//! drives with events and the time (`now` comes in: the tests run on virtual time):
//! - the **serving worker** ([`Serving`]): down (restart due at a time) → started →
//!   ready; restarted at once after a healthy run, backing off in a crash loop;
//! - the **spare** ([`SpareState`]): none (next one due at a time) → starting → ready →
//!   loaded a new model;
//! - the **swap** ([`Swap`]): a model change in progress, loaded by the worker or by the
//!   ready spare, ending in one [`SwapOutcome`].
//!
//! The spare (`--spare-worker`) is a second worker with the current model already loaded
//! and nothing to do; when the worker dies it takes over at once (no interpreter start,
//! no imports, no session creation), and a new spare is started a little later. It is
//! started once the worker has delivered results, and replaced after a model change.

mod handle;
mod spare;
mod swap;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use orion_config::models::ModelFiles;
use orion_process::backoff::Backoff;
use orion_protocol::ModelSize;
use orion_protocol::command::{AckError, Command, ErrorKind};
use serde_json::{Value, json};

pub use self::handle::Handle;
use self::spare::{Spare, SpareState};
pub use self::swap::{Loader, Swap, SwapOutcome};
use crate::worker::{Reply, Request, Worker, WorkerEvent};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// How long after a worker (re)start or a model change the spare is (re)made: the load
/// competes with inference for the CPU, so not in the same moment.
const SPARE_DELAY: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A worker that ran this long without a result was not crash-looping.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// Request ids of model loads (inference ids count up from 1).
const SWAP_IDS: u64 = 1 << 62;
/// The niceness a spare that found no idle CPU is raised to (it starts at 19).
const SPARE_RAISED_NICE: i32 = 10;

/// The worker serving frames.
enum Serving<W> {
    /// None runs; the next starts at `restart_at` (`None`: not before it is asked for).
    Down { restart_at: Option<Instant> },
    /// Started, loading its model.
    Started { worker: W },
    /// Loaded: frames go to it. `healthy` once it delivered a result (its death is then a
    /// crash to recover from at once).
    Ready { worker: W, healthy: bool },
}

pub struct WorkerLink<W: Handle = Worker> {
    /// Keep a spare at all.
    keep_spare: bool,
    /// oriond said the box cannot afford stand-ins now: no spare runs (`shed_spare`).
    spare_shed: bool,
    /// Start the next worker at a spare's low priority (a standby detector's: it restores
    /// its niceness on its first inference request, after the take-over).
    low_priority_start: bool,
    serving: Serving<W>,
    /// The serving worker's generation (its events are the current ones; after its death
    /// they stay so until the next start).
    generation: u64,
    /// When the serving worker started.
    started: Instant,
    /// Input sizes of the model loaded last.
    sizes: Vec<u32>,
    model: ModelFiles,
    backoff: Backoff,
    spare: SpareState<W>,
    swap: Option<Swap>,
    next_swap: u64,
    /// The last generation handed out (worker and spare alike).
    next_generation: u64,
    pub restarts: u64,
    /// Worker deaths a ready spare took over.
    pub spare_takeovers: u64,
}

impl<W: Handle> WorkerLink<W> {
    pub fn new(
        model: ModelFiles,
        keep_spare: bool,
        low_priority_start: bool,
        now: Instant,
    ) -> Self {
        Self {
            keep_spare,
            spare_shed: false,
            low_priority_start,
            serving: Serving::Down {
                restart_at: Some(now),
            },
            generation: 0,
            started: now,
            sizes: Vec::new(),
            model,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX, Duration::MAX),
            spare: SpareState::None { due: None },
            swap: None,
            next_swap: SWAP_IDS,
            next_generation: 0,
            restarts: 0,
            spare_takeovers: 0,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.serving, Serving::Ready { .. })
    }

    pub fn worker_mut(&mut self) -> Option<&mut W> {
        match &mut self.serving {
            Serving::Down { .. } => None,
            Serving::Started { worker } | Serving::Ready { worker, .. } => Some(worker),
        }
    }

    fn worker(&self) -> Option<&W> {
        match &self.serving {
            Serving::Down { .. } => None,
            Serving::Started { worker } | Serving::Ready { worker, .. } => Some(worker),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.worker().map(Handle::pid)
    }

    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    /// The input sizes of the worker the next frame goes to: the loaded spare's while it
    /// is about to take over (a frame prepared now waits for it).
    pub fn next_sizes(&self) -> &[u32] {
        match &self.spare {
            SpareState::Loaded { sizes, .. } => sizes,
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

    /// oriond's memory gate (`supervisor/src/memory.rs`): while `shed`, no spare runs — one
    /// standing by is dropped now (its memory back to the box), none starts. A spare
    /// loading a model change finishes it: the change is the operator's.
    pub fn shed_spare(&mut self, shed: bool) {
        self.spare_shed = shed;
        if shed && self.swap.is_none() {
            self.drop_spare();
        }
    }

    pub fn spare_shed(&self) -> bool {
        self.spare_shed
    }

    /// The spare's pid, if one runs.
    pub fn spare_pid(&self) -> Option<u32> {
        self.spare.spare().map(|s| s.worker.pid())
    }

    /// A spare is loaded and could take over now.
    pub fn spare_ready(&self) -> bool {
        matches!(
            self.spare,
            SpareState::Ready { .. } | SpareState::Loaded { .. }
        )
    }

    /// Starts a worker if one is due, and a spare if one is wanted. `spawn(model, spare,
    /// generation)` starts a process on `model` whose events carry `generation` (a spare
    /// at a low CPU priority).
    pub fn start_if_due(
        &mut self,
        now: Instant,
        mut spawn: impl FnMut(&ModelFiles, bool, u64) -> Result<W, String>,
    ) -> Result<(), String> {
        if let Serving::Down {
            restart_at: Some(at),
        } = self.serving
            && now >= at
        {
            self.serving = Serving::Down { restart_at: None };
            let generation = self.next_generation();
            let worker = spawn(&self.model, self.low_priority_start, generation)?;
            tracing::info!(pid = worker.pid(), generation, model = %self.model.size, "worker started");
            self.serving = Serving::Started { worker };
            self.generation = generation;
            self.started = now;
            if let SpareState::None { due } = &mut self.spare {
                *due = None;
            }
        }
        let healthy = matches!(self.serving, Serving::Ready { healthy: true, .. });
        let SpareState::None { due } = &mut self.spare else {
            return Ok(());
        };
        if !(self.keep_spare && !self.spare_shed && self.swap.is_none() && healthy) {
            return Ok(());
        }
        if now < *due.get_or_insert(now + SPARE_DELAY) {
            return Ok(());
        }
        // A spare that cannot start is not the worker's failure: try again later.
        let generation = self.next_generation + 1;
        match spawn(&self.model, true, generation) {
            Ok(worker) => {
                self.next_generation = generation;
                tracing::info!(pid = worker.pid(), generation, model = %self.model.size, "spare worker started");
                self.spare = SpareState::Starting(Spare {
                    worker,
                    generation,
                    model: self.model.clone(),
                    started: now,
                    raised: false,
                });
            }
            Err(why) => {
                self.next_generation = generation;
                tracing::warn!(why, "spare worker not started");
                *due = Some(now + BACKOFF_MAX);
            }
        }
        Ok(())
    }

    fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn spare_swap_id(&self) -> Option<u64> {
        self.swap
            .as_ref()
            .filter(|s| s.loader == Loader::Spare)
            .map(|s| s.id)
    }

    /// An event of worker `generation` if that is the spare (else nothing happens): a
    /// swap the spare could not do ends here.
    pub fn spare_event(
        &mut self,
        generation: u64,
        event: &WorkerEvent,
        now: Instant,
    ) -> Option<SwapOutcome> {
        if self
            .spare
            .spare()
            .is_none_or(|s| s.generation != generation)
        {
            return None;
        }
        let swap_id = self.spare_swap_id();
        match event {
            WorkerEvent::Reply(Ok(Reply::Ready { pid, sizes, .. })) => {
                tracing::info!(pid, ?sizes, "spare worker ready");
                self.spare =
                    match std::mem::replace(&mut self.spare, SpareState::None { due: None }) {
                        SpareState::Starting(spare) | SpareState::Ready { spare, .. } => {
                            SpareState::Ready {
                                spare,
                                sizes: sizes.clone(),
                            }
                        }
                        other => other,
                    };
                None
            }
            WorkerEvent::Reply(Ok(Reply::ModelLoaded {
                id, sizes, load_ms, ..
            })) if Some(*id) == swap_id => {
                // It becomes the worker once the old one has answered what it has
                // ([`WorkerLink::promote_loaded_spare`]): no frame in flight is lost.
                self.spare =
                    match std::mem::replace(&mut self.spare, SpareState::None { due: None }) {
                        SpareState::Ready { spare, .. } | SpareState::Starting(spare) => {
                            SpareState::Loaded {
                                spare,
                                sizes: sizes.clone(),
                                load_ms: *load_ms,
                            }
                        }
                        other => other,
                    };
                None
            }
            WorkerEvent::Reply(Ok(Reply::Error { id, message, .. }))
                if id.is_some() && *id == swap_id =>
            {
                let swap = self.swap.take()?;
                // What the spare holds now is not known: a new one, later.
                self.drop_spare();
                Some(SwapOutcome::failed(swap, message))
            }
            WorkerEvent::Gone(why) => {
                tracing::warn!(why, "spare worker gone; another later");
                self.spare = SpareState::None {
                    due: Some(now + BACKOFF_MAX),
                };
                let swap = self.swap.take_if(|s| s.loader == Loader::Spare)?;
                let why = format!("the worker loading it exited ({why})");
                Some(SwapOutcome::failed(swap, &why))
            }
            _ => None,
        }
    }

    /// The spare has loaded the swap's model: no new frame goes to the old worker.
    pub fn switch_pending(&self) -> bool {
        matches!(self.spare, SpareState::Loaded { .. })
    }

    /// Makes the spare that loaded the swap's model the worker (call when the old one has
    /// nothing in flight); the swap, done.
    pub fn promote_loaded_spare(&mut self, now: Instant) -> Option<SwapOutcome> {
        if !self.switch_pending() {
            return None;
        }
        let loaded = std::mem::replace(&mut self.spare, SpareState::None { due: None });
        let SpareState::Loaded {
            spare,
            sizes,
            load_ms,
        } = loaded
        else {
            return None;
        };
        // Without its swap (given up meanwhile) the spare's model is nobody's: it goes.
        let swap = self.swap.take_if(|s| s.loader == Loader::Spare)?;
        tracing::info!(pid = spare.worker.pid(), model = %swap.files.size, "the spare loaded the new model and becomes the worker");
        self.serving = Serving::Ready {
            worker: spare.worker, // the old one is killed and reaped
            healthy: false,
        };
        self.generation = spare.generation;
        self.model = swap.files.clone();
        self.sizes = sizes.clone();
        self.started = now;
        Some(SwapOutcome::Loaded {
            swap,
            sizes,
            load_ms,
        })
    }

    /// Drops the spare (its model is not the worker's any more); the next one waits
    /// [`SPARE_DELAY`] (not to load beside the first inferences of the new model).
    fn drop_spare(&mut self) {
        self.spare = SpareState::None { due: None };
    }

    /// The worker said it is ready with these input sizes.
    pub fn ready(&mut self, sizes: Vec<u32>) {
        self.serving =
            match std::mem::replace(&mut self.serving, Serving::Down { restart_at: None }) {
                Serving::Started { worker } => Serving::Ready {
                    worker,
                    healthy: false,
                },
                other => other,
            };
        self.sizes = sizes;
    }

    /// The worker inferred a frame.
    pub fn healthy(&mut self) {
        if let Serving::Ready { healthy, .. } = &mut self.serving {
            *healthy = true;
        }
    }

    /// The worker is gone (exited, hung, broke the protocol): a ready spare with the same
    /// model takes over at once; else it is restarted at once after a healthy run, or
    /// after a growing delay in a crash loop. Returns the swap it took with it, ended, and
    /// the delay (`None`: the spare took over).
    pub fn died(&mut self, now: Instant) -> (Option<SwapOutcome>, Option<Duration>) {
        // Dropping the worker kills and reaps it if it is still there.
        let was = std::mem::replace(&mut self.serving, Serving::Down { restart_at: None });
        let healthy = matches!(was, Serving::Ready { healthy: true, .. });
        drop(was);
        let swap = self.swap.take();
        if swap.as_ref().is_some_and(|s| s.loader == Loader::Spare) {
            // The spare was loading another model: not a worker for the current one.
            self.drop_spare();
        }
        let outcome = swap.map(|s| SwapOutcome::worker_restarted(s, self.model.size));
        let spare = std::mem::replace(&mut self.spare, SpareState::None { due: None });
        match spare {
            SpareState::Ready { spare, sizes } if spare.model == self.model => {
                tracing::info!(pid = spare.worker.pid(), "the spare worker takes over");
                self.serving = Serving::Ready {
                    worker: spare.worker,
                    healthy: false,
                };
                self.generation = spare.generation;
                self.sizes = sizes;
                self.started = now;
                self.restarts += 1;
                self.spare_takeovers += 1;
                return (outcome, None);
            }
            other => self.spare = other,
        }
        let delay = if healthy || now.saturating_duration_since(self.started) > HEALTHY_RUN {
            self.backoff.reset();
            Duration::ZERO
        } else {
            self.backoff.after_run(Duration::ZERO)
        };
        self.restarts += 1;
        self.serving = Serving::Down {
            restart_at: Some(now + delay),
        };
        (outcome, Some(delay))
    }

    /// Asks the ready spare (else the worker) to load `files` in the background;
    /// `Ok(Some)` if nothing changes.
    pub fn begin_swap(
        &mut self,
        files: ModelFiles,
        command: &Command,
        now: Instant,
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
        let restarting = || {
            AckError::new(
                ErrorKind::Unavailable,
                "the worker is restarting; try again",
            )
        };
        if !self.is_ready() {
            return Err(restarting());
        }
        let loader = if self.spare_ready() {
            Loader::Spare
        } else {
            Loader::Worker
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
        let target = match loader {
            Loader::Spare => self.spare.spare_mut().map(|s| &mut s.worker),
            Loader::Worker => self.worker_mut(),
        };
        let Some(worker) = target else {
            return Err(restarting());
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
            started: now,
            loader,
            raised: false,
        });
        Ok(None)
    }

    /// The worker loaded the swap `id`: it is the model now.
    pub fn swapped(&mut self, id: u64, sizes: Vec<u32>, load_ms: f64) -> Option<SwapOutcome> {
        let swap = self
            .swap
            .take_if(|s| s.id == id && s.loader == Loader::Worker)?;
        self.model = swap.files.clone();
        self.sizes = sizes.clone();
        // The spare holds the old model: a new one, a little later.
        self.drop_spare();
        Some(SwapOutcome::Loaded {
            swap,
            sizes,
            load_ms,
        })
    }

    /// The worker could not load the swap `id` (the old model stays).
    pub fn swap_failed(&mut self, id: Option<u64>, message: &str) -> Option<SwapOutcome> {
        let swap = self
            .swap
            .take_if(|s| Some(s.id) == id && s.loader == Loader::Worker)?;
        Some(SwapOutcome::failed(swap, message))
    }

    /// A swap that has taken `limit` or longer ends (`timeout`). A spare loading it goes;
    /// the worker loading it must be restarted on the model it has (else it could still
    /// switch later, behind everyone's back): the second value says why, if it must.
    pub fn overdue_swap(
        &mut self,
        limit: Duration,
        now: Instant,
    ) -> Option<(SwapOutcome, Option<String>)> {
        let swap = self
            .swap
            .take_if(|s| now.saturating_duration_since(s.started) >= limit)?;
        let restart_worker = swap.loader == Loader::Worker;
        if !restart_worker {
            // The worker serving frames never loaded it: only the spare goes.
            self.drop_spare();
        }
        let why = format!(
            "model {} did not load within {} s; still {}",
            swap.files.size,
            limit.as_secs(),
            self.model.size
        );
        let restart = restart_worker.then(|| why.clone());
        let outcome = SwapOutcome::Failed {
            swap,
            kind: ErrorKind::Timeout,
            why,
        };
        Some((outcome, restart))
    }

    /// A spare starts, and loads a swap's model, at niceness 19 (it takes almost only
    /// idle CPU, so the worker serving frames keeps its speed); on a box too busy to leave
    /// a core idle that could take very long, so a start or load still going after `after`
    /// is raised to niceness 10. What was raised now, if anything.
    pub fn raise_starved_spare(&mut self, after: Duration, now: Instant) -> Option<&'static str> {
        let starting = matches!(self.spare, SpareState::Starting(_));
        let spare = self.spare.spare_mut()?;
        let what = if let Some(swap) = self.swap.as_mut().filter(|s| {
            s.loader == Loader::Spare
                && !s.raised
                && now.saturating_duration_since(s.started) >= after
        }) {
            swap.raised = true;
            "loading the new model"
        } else if starting && !spare.raised && now.saturating_duration_since(spare.started) >= after
        {
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
}

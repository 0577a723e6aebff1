//! The conversation with the Python worker: which worker (generation) is current, whether
//! it is ready and healthy, its restarts (at once after a healthy run, backing off in a
//! crash loop), and a model swap in progress.

use std::time::{Duration, Instant};

use orion_config::models::ModelFiles;
use orion_process::backoff::Backoff;
use orion_protocol::ModelSize;
use orion_protocol::command::{AckError, Command, ErrorKind};
use serde_json::{Value, json};

use crate::tensors::TensorBuffer;
use crate::worker::{Request, Worker, WorkerConfig, WorkerEvent};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Request ids of model loads (inference ids count up from 1).
const SWAP_IDS: u64 = 1 << 62;

/// A model change waiting for the worker's `model_loaded`.
pub struct Swap {
    pub id: u64,
    pub files: ModelFiles,
    pub command: Command,
    pub started: Instant,
}

pub struct WorkerLink {
    config: WorkerConfig,
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
    pub restarts: u64,
}

impl WorkerLink {
    pub fn new(config: WorkerConfig, model: ModelFiles) -> Self {
        Self {
            config,
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

    pub fn model(&self) -> &ModelFiles {
        &self.model
    }

    pub fn loading(&self) -> Option<ModelSize> {
        self.swap.as_ref().map(|s| s.files.size)
    }

    /// Starts a worker if one is due; `on_event` gets its replies tagged with the new
    /// generation.
    pub fn start_if_due(
        &mut self,
        tensors: &TensorBuffer,
        on_event: impl FnMut(u64, WorkerEvent) -> bool + Send + 'static,
    ) -> Result<(), String> {
        if self.worker.is_some() || self.restart_at.is_none_or(|t| Instant::now() < t) {
            return Ok(());
        }
        self.restart_at = None;
        self.generation += 1;
        let generation = self.generation;
        let mut on_event = on_event;
        let spawned = tensors
            .share_read_only()
            .map_err(anyhow::Error::from)
            .and_then(|fd| {
                Worker::spawn(&self.config, &self.model, fd, move |e| {
                    on_event(generation, e)
                })
            });
        match spawned {
            Ok(worker) => {
                tracing::info!(pid = worker.pid(), generation, model = %self.model.size, "worker started");
                self.worker = Some(worker);
                self.started = Instant::now();
                Ok(())
            }
            Err(err) => Err(format!("{err:#}")),
        }
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

    /// The worker is gone (exited, hung, broke the protocol): it is restarted at once
    /// after a healthy run, or after a growing delay in a crash loop. Returns the swap it
    /// took with it and the delay.
    pub fn died(&mut self) -> (Option<Swap>, Duration) {
        self.worker = None; // kills and reaps it if it is still there
        self.ready = false;
        let delay = if self.healthy || self.started.elapsed() > Duration::from_secs(30) {
            self.backoff.reset();
            Duration::ZERO
        } else {
            self.backoff.after_run(Duration::ZERO)
        };
        self.healthy = false;
        self.restarts += 1;
        self.restart_at = Some(Instant::now() + delay);
        (self.swap.take(), delay)
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
        let (Some(worker), true) = (self.worker.as_mut(), self.ready) else {
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
        });
        Ok(None)
    }

    /// The worker loaded the swap `id`: it is the model now.
    pub fn swapped(&mut self, id: u64, sizes: Vec<u32>) -> Option<Swap> {
        let swap = self.swap.take_if(|s| s.id == id)?;
        self.model = swap.files.clone();
        self.sizes = sizes;
        Some(swap)
    }

    /// The swap in progress if it has taken `limit` or longer.
    pub fn take_overdue_swap(&mut self, limit: Duration) -> Option<Swap> {
        self.swap.take_if(|s| s.started.elapsed() >= limit)
    }

    /// The worker could not load the swap `id` (the old model stays).
    pub fn swap_failed(&mut self, id: Option<u64>) -> Option<Swap> {
        self.swap.take_if(|s| Some(s.id) == id)
    }
}

//! A model change in progress, and how it ended: one [`SwapOutcome`], answered in one place
//! by the bridge.

use std::time::Instant;

use orion_config::models::ModelFiles;
use orion_protocol::ModelSize;
use orion_protocol::command::{AckError, Command, ErrorKind};
use serde_json::{Value, json};

/// Which worker loads the new model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// The worker serving frames (no spare was ready).
    Worker,
    /// The ready spare, which then replaces the worker: the worker serving frames never
    /// loads (a session build holds Python's GIL, which would stall its requests).
    Spare,
}

/// A model change waiting for its loader's `model_loaded`.
#[derive(Debug)]
pub struct Swap {
    pub id: u64,
    pub files: ModelFiles,
    pub command: Command,
    pub started: Instant,
    pub loader: Loader,
    /// The spare loading it was raised to niceness 10 because the load took long.
    pub raised: bool,
}

/// How a swap ended.
#[derive(Debug)]
pub enum SwapOutcome {
    /// The new model serves frames from now on.
    Loaded {
        swap: Swap,
        sizes: Vec<u32>,
        load_ms: f64,
    },
    /// The old model stays; `why` is the whole answer.
    Failed {
        swap: Swap,
        kind: ErrorKind,
        why: String,
    },
}

impl SwapOutcome {
    pub fn failed(swap: Swap, why: &str) -> Self {
        let why = format!("model {} not loaded: {why}", swap.files.size);
        Self::Failed {
            swap,
            kind: ErrorKind::Failed,
            why,
        }
    }

    /// The worker died while it (or the spare) loaded the model.
    pub fn worker_restarted(swap: Swap, current: ModelSize) -> Self {
        let why = format!(
            "worker restarted while loading model {}; still {current}",
            swap.files.size
        );
        Self::Failed {
            swap,
            kind: ErrorKind::Failed,
            why,
        }
    }

    pub fn swap(&self) -> &Swap {
        match self {
            Self::Loaded { swap, .. } | Self::Failed { swap, .. } => swap,
        }
    }

    /// The answer to the `set_model_size` command.
    pub fn answer(&self) -> Result<Value, AckError> {
        match self {
            Self::Loaded {
                swap,
                sizes,
                load_ms,
            } => {
                let mut data = json!({"size": swap.files.size, "sizes": sizes, "load_ms": load_ms});
                if swap.loader == Loader::Spare {
                    data["loaded_by"] = json!("spare");
                }
                Ok(data)
            }
            Self::Failed { kind, why, .. } => Err(AckError::new(*kind, why.clone())),
        }
    }
}

//! The timeout ladder of a command that waits on a model load, in one place. A model load
//! can take minutes on a small box (a large model, ONNX Runtime's session build), and a
//! command passes through up to four waiters: orionctl or orion-control → oriond → the
//! detector → the worker. Each waiter gives up later than the one it waits for, so the
//! innermost gives the answer (an error that says what happened) and an outer one's bare
//! `timeout` only means a request was lost.

use std::time::Duration;

/// The detector gives up a worker's model load after this long and keeps the old model.
pub const MODEL_SWAP: Duration = Duration::from_secs(150);
/// oriond gives up waiting for the detector's answer to a model change.
pub const ORIOND_MODEL_COMMAND: Duration = Duration::from_secs(180);
/// oriond gives up waiting for any other forwarded command's answer.
pub const ORIOND_COMMAND: Duration = Duration::from_secs(10);
/// orion-control and orionctl give up waiting for oriond's answer to any command.
pub const COMMANDER: Duration = Duration::from_secs(200);

// The ladder climbs: checked when the crate builds.
const _: () = assert!(MODEL_SWAP.as_secs() < ORIOND_MODEL_COMMAND.as_secs());
const _: () = assert!(ORIOND_MODEL_COMMAND.as_secs() < COMMANDER.as_secs());
const _: () = assert!(ORIOND_COMMAND.as_secs() < COMMANDER.as_secs());

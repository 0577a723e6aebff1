//! Orion's capture process: one camera → GStreamer → RGB frames in the shared-memory ring.
//!
//! - [`source`]: the camera URI, validated, credentials kept out of logs.
//! - [`pipeline`]: the GStreamer pipeline, built element by element.
//! - [`sink`]: each frame into the ring, counted ([`sink::FrameSink`]).
//! - [`stream`]: the reconnect-forever loop with stall detection ([`stream::Capture`]).
//! - [`sandbox`]: Landlock and seccomp: the network-facing process gets the least.
//! - [`status`]: status reports (reconnect delays: `orion_process::backoff`).
//! - [`cli`]: the process: arguments, validation, signal handling.

#![forbid(unsafe_code)]

pub mod cli;
pub mod pipeline;
pub mod sandbox;
pub mod sink;
pub mod source;
pub mod status;
pub mod stream;

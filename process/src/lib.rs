//! The process edge every Orion child process shares, so each `main` stays a few lines:
//!
//! - [`init_logging`]: structured logs, filtered by `RUST_LOG` (default `info`): relayed
//!   through oriond for its children, the journal for oriond under systemd (`logging`).
//! - [`run_main`]: validated arguments → run → exit code (2 bad arguments, 1 fatal error,
//!   0 after an orderly stop).
//! - [`child_setup`]: die with the parent (`PR_SET_PDEATHSIG`) and turn SIGTERM/SIGINT into
//!   a stop flag the process polls.
//! - [`backoff`]: the one doubling delay (reconnects, restarts, failed starts).
//! - [`channel`]: messages to and from oriond (framed on its socket, or JSON lines by hand).
//! - [`rate`]: events per second over a sliding window (every FPS in a status).
//! - [`ring_arg`]: where the frame ring is (`--ring NAME` or the descriptor oriond hands down).

#![forbid(unsafe_code)]

pub mod backoff;
pub mod channel;
pub mod logging;
pub mod oom;
pub mod rate;
pub mod ring_arg;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};

pub use logging::init_logging;

/// Runs `run` on the validated arguments and maps the outcome to the exit code: a
/// validation error is printed as `<name>: <error>` and exits 2; a run error is logged and
/// exits 1.
pub fn run_main<C>(
    name: &str,
    validated: Result<C>,
    run: impl FnOnce(C) -> Result<()>,
) -> ExitCode {
    let config = match validated {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Nothing of Orion outlives its supervisor: SIGTERM when the parent dies. Returns the flag
/// SIGTERM and SIGINT set, for an orderly stop.
pub fn child_setup() -> Result<Arc<AtomicBool>> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .context("prctl(PR_SET_PDEATHSIG)")?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone()).context("install signal handler")?;
    }
    Ok(shutdown)
}

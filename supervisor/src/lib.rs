//! `oriond`, the one process systemd starts: validates the config, preflights, creates the
//! frame ring and the socket, starts control → detector → capture, supervises them and
//! routes every command (see the crate README and docs/architecture.md#processes). The
//! library holds all of it; `main.rs` only parses the arguments and calls [`oriond`].

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use orion_config::Config;
use orion_ring::{PixelFormat, RingGeometry, RingOwner};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

mod atomic_file;
mod authority;
mod child;
pub mod cli;
mod dedupe;
mod desired;
mod events;
mod ipc;
mod lifecycle;
mod lineage;
mod logbuf;
mod measured;
pub mod memory;
pub mod metrics;
mod open_events;
mod orphans;
mod outbox;
mod persist;
mod preflight;
mod registry;
mod relay;
mod snapshot_helper;
mod spawn;
mod spec;
mod supervisor;
#[allow(unsafe_code)] // fork-to-exec code only (see sys.rs)
mod sys;

use desired::Desired;
use events::Event;
use supervisor::Supervisor;

pub use cli::oriond::Args;

/// Runs oriond with `args` until it is told to stop; its exit code (2: a config or an
/// environment it refuses, 1: a failure while running).
pub fn oriond(args: Args) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oriond: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let (desired, warning) = crate::desired::load(&config.state_path(), &config);
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    // Root must not run Python another user can write (issue: authority per connection):
    // the check refuses; a root oriond (a lab, the demo) is warned, the service runs as orion.
    if let Err(why) = orion_config::trust::root_may_run(&config.detector.python) {
        if args.check_config {
            eprintln!("oriond: detector.python: {why}");
            return ExitCode::from(2);
        }
        tracing::warn!(
            "detector.python: {why}; oriond runs as root, so its worker would too: run oriond as its service user"
        );
    }
    if let Err(e) = preflight::check(&config, desired.model_size) {
        eprintln!("oriond: {e:#}");
        return ExitCode::from(2);
    }
    if args.check_config {
        println!("{}: OK", args.config.display());
        return ExitCode::SUCCESS;
    }
    orion_process::run_main("oriond", Ok(()), |()| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the runtime")?;
        runtime.block_on(run(config, args.config, desired))
    })
}

async fn run(config: Config, config_path: PathBuf, desired: Desired) -> Result<()> {
    preflight::state_dir(&config)?;
    orphans::adopt()?;
    let listener = ipc::bind(&config.socket_path()).await?;
    let geometry = RingGeometry::for_frames(
        config.ring.slots,
        config.stream.width,
        config.stream.height,
        PixelFormat::Rgb8,
    )
    .context("ring geometry")?;
    // A sealed memfd handed to capture and detector by descriptor: no name to squat, no
    // size anyone can change (ADR 0005).
    let label = config.ring_label();
    let ring = RingOwner::create_sealed(&label, geometry)
        .with_context(|| format!("create the frame ring {label}"))?;
    tracing::info!(
        ring = label,
        bytes = geometry.total_size(),
        socket = %config.socket_path().display(),
        "oriond starting"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    ipc::spawn_accept(listener, tx.clone());
    spawn_signals(tx.clone())?;
    let socket = config.socket_path();
    let result = Supervisor::new(config, config_path, desired, ring, tx)
        .run(rx)
        .await;
    orphans::reap_remaining(std::time::Duration::from_secs(2)).await;
    let _ = std::fs::remove_file(socket);
    result
}

fn spawn_signals(tx: mpsc::UnboundedSender<Event>) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = term.recv() => Event::Terminate,
                _ = int.recv() => Event::Terminate,
                _ = hup.recv() => Event::Reload,
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    Ok(())
}

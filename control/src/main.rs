//! `orion-control`: Orion's one MQTT client (docs/architecture.md#the-command-path), a child of oriond. See
//! the crate README for the topics, the ack shape and the counters it reports.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use orion_config::Config;

mod app;
mod discovery;
mod mqtt;
mod oriond;
#[cfg(test)]
mod reference_doc;
mod topics;

/// Orion's MQTT client; oriond starts it.
#[derive(Parser, Debug)]
#[command(name = "orion-control", version)]
struct Args {
    /// Orion's configuration file (the [mqtt] section and instance_id are used)
    #[arg(long, default_value = orion_config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    orion_process::init_logging();
    let args = Args::parse();
    let config = Config::load(&args.config)
        .with_context(|| format!("{}", args.config.display()))
        .and_then(|c| {
            anyhow::ensure!(c.mqtt.enabled, "mqtt.enabled is false: nothing to do");
            Ok(c)
        });
    orion_process::run_main("orion-control", config, |config| {
        // Parent death → SIGTERM, which the app turns into an orderly "offline".
        nix_pdeathsig()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the runtime")?;
        runtime.block_on(async {
            let link = oriond::connect().await?;
            app::run(config, link).await
        })
    })
}

fn nix_pdeathsig() -> anyhow::Result<()> {
    // The SIGTERM flag of child_setup is not used: the app listens for SIGTERM itself.
    orion_process::child_setup().map(|_| ())
}

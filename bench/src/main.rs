//! `orion-bench SUITE`: prints one JSON object per line, `{"bench", "value", "unit", ...}`.
//! Ratios are taken against a baseline measured in the same run.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod report;
mod ring;
mod stats;

#[derive(Parser)]
#[command(about = "Orion benchmarks (JSON lines on stdout)")]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// Frame ring: write bandwidth vs memcpy, cross-process wake-up latency, torn-read stress.
    Ring(ring::Options),
    /// Internal: a child process of the ring suite.
    #[command(hide = true)]
    RingChild(ring::ChildArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().suite {
        Suite::Ring(opts) => ring::run(&opts),
        Suite::RingChild(args) => ring::child(&args),
    }
}

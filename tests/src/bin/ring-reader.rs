//! Test helper: attaches to a ring (waiting for it to exist), checks every frame it reads
//! until stdin closes, then prints a `ReaderSummary` JSON line.

#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Ring name, e.g. /orion-test-frames
    #[arg(long)]
    ring: String,
}

fn main() -> anyhow::Result<()> {
    orion_tests::ring_probe::reader_main(&Args::parse().ring)
}

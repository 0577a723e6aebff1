//! Test helper: attaches to a ring as its writer and writes self-checking frames until
//! stdin closes. Prints a `WriterReady` JSON line, then a `WriterSummary` line.

#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Ring name, e.g. /orion-test-frames
    #[arg(long)]
    ring: String,
    #[arg(long, default_value_t = 1024)]
    width: u32,
    #[arg(long, default_value_t = 1024)]
    height: u32,
    /// Pause between frames in microseconds (0: full speed)
    #[arg(long, default_value_t = 0)]
    interval_us: u64,
    /// Stop after this many frames (0: until stdin closes)
    #[arg(long, default_value_t = 0)]
    frames: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    orion_tests::ring_probe::writer_main(&a.ring, a.width, a.height, a.interval_us, a.frames)
}

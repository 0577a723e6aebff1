//! `orion-snapshot`: started by oriond for one snapshot (see the crate README). Reads the
//! overlay on stdin, writes the report (one framed message) and the image to stdout;
//! any failure is one line on stderr and exit status 1.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use orion_process::ring_arg::RingArg;
use orion_protocol::snapshot::Overlay;
use orion_ring::RingReader;

/// Largest overlay read from stdin.
const MAX_OVERLAY: u64 = 256 * 1024;
/// Largest font file read.
const MAX_FONT: u64 = 32 << 20;

/// Draws the newest frame of an Orion frame ring with the overlay given on stdin.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Frame ring to read by name, e.g. /orion-room1-frames
    #[arg(long)]
    ring: Option<String>,
    /// Frame ring to read as an inherited descriptor (how oriond runs it)
    #[arg(long)]
    ring_fd: Option<i32>,
    /// TrueType font for the caption and labels; without one, the drawing has no text
    #[arg(long)]
    font: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orion-snapshot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let ring = RingArg::new(args.ring.as_deref(), args.ring_fd)?.source("snapshot")?;
    let mut reader = RingReader::attach(ring).context("attach to the frame ring")?;
    let overlay = read_overlay()?;
    let font = args.font.as_deref().and_then(|p| match load_font(p) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("orion-snapshot: no caption: {e:#}");
            None
        }
    });
    let (mut img, mut taken) = orion_snapshot::frame::newest(&mut reader)?;
    taken.captioned = font.is_some();
    taken.boxes_drawn = orion_snapshot::draw(&mut img, &overlay, &taken, font.as_ref());
    let image = orion_snapshot::encode::encode(&img, &overlay)?;
    let mut out = std::io::stdout().lock();
    let report = serde_json::to_vec(&taken)?;
    orion_protocol::wire::write_message(&mut out, &report)?;
    out.write_all(&image)?;
    out.flush()?;
    Ok(())
}

fn read_overlay() -> Result<Overlay> {
    let mut text = Vec::new();
    std::io::stdin()
        .take(MAX_OVERLAY + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_OVERLAY {
        anyhow::bail!("the overlay on stdin is over {MAX_OVERLAY} bytes");
    }
    serde_json::from_slice(&text).context("the overlay on stdin")
}

fn load_font(path: &std::path::Path) -> Result<ab_glyph::FontArc> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot open font {}", path.display()))?
        .take(MAX_FONT)
        .read_to_end(&mut bytes)?;
    ab_glyph::FontArc::try_from_vec(bytes)
        .with_context(|| format!("{} is not a TrueType font", path.display()))
}

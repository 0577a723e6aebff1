//! The ring suite.
//!
//! - `ring.write_1080p`: 1920×1080 RGB frames written into a ring of ≥ 320 MiB of slots
//!   (larger than this machine's 260 MiB L3), as a ratio of plain memcpy of the same frames
//!   into an equally large buffer. Rounds alternate between the two; medians are compared.
//! - `ring.wake_p99_us`: publish in this process → a reader process sleeping in
//!   `wait_for_newer` wakes and holds the frame's metadata (CLOCK_MONOTONIC on both sides).
//! - `ring.torn_accepted`: a full-speed writer process and a checksumming reader; frames
//!   the ring accepted whose checksum failed. Anything above 0 is a bug.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use orion_ring::{
    CaptureTime, FrameGeometry, PixelFormat, Read, RingGeometry, RingName, RingOwner, RingWriter,
    monotonic_ns,
};
use orion_tests::child::ChildGuard;
use orion_tests::ring_probe::{self, ReaderSummary};
use serde_json::json;

use crate::report;
use crate::stats::{median, percentile};

#[derive(clap::Args)]
pub struct Options {
    /// Alternating memcpy/ring rounds for the bandwidth ratio.
    #[arg(long, default_value_t = 7)]
    rounds: u32,
    /// Wake-up samples.
    #[arg(long, default_value_t = 3000)]
    wakes: usize,
    /// Seconds of torn-read stress.
    #[arg(long, default_value_t = 5)]
    stress_secs: u64,
}

#[derive(clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    role: ChildRole,
    #[arg(long)]
    ring: String,
    #[arg(long, default_value_t = 0)]
    samples: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ChildRole {
    /// Full-speed self-checking writer (until stdin closes).
    Writer,
    /// Sleeps in wait_for_newer and reports wake-up latencies.
    WakeReader,
}

pub fn run(opts: &Options) -> Result<()> {
    write_bandwidth(opts.rounds)?;
    wake_latency(opts.wakes)?;
    torn_stress(Duration::from_secs(opts.stress_secs))?;
    Ok(())
}

pub fn child(args: &ChildArgs) -> Result<()> {
    match args.role {
        ChildRole::Writer => ring_probe::writer_main(&args.ring, 1024, 1024, 0, 0),
        ChildRole::WakeReader => wake_reader(&args.ring, args.samples),
    }
}

fn bench_ring_name(tag: &str) -> Result<RingName> {
    Ok(RingName::new(&format!(
        "/orion-bench-{}-{tag}",
        std::process::id()
    ))?)
}

fn child_cmd(role: &str, ring: &RingName, samples: usize) -> Result<Command> {
    let mut cmd = Command::new(std::env::current_exe().context("locate orion-bench")?);
    cmd.args([
        "ring-child",
        "--role",
        role,
        "--ring",
        ring.as_str(),
        "--samples",
        &samples.to_string(),
    ]);
    Ok(cmd)
}

// ---- write bandwidth ----------------------------------------------------------------------

const MIN_RING_BYTES: u64 = 320 << 20;

fn write_bandwidth(rounds: u32) -> Result<()> {
    let frame = FrameGeometry::packed(1920, 1080, PixelFormat::Rgb8)?;
    let frame_len = frame.full_len();
    let probe = RingGeometry::new(1, frame_len)?;
    let slots = MIN_RING_BYTES.div_ceil(probe.slot_stride()) as u32;
    let geometry = RingGeometry::new(slots, frame_len)?;
    let owner = RingOwner::create(bench_ring_name("write")?, geometry)?;
    let mut writer = RingWriter::attach(owner.source().clone())?;

    let source: Vec<u8> = (0..frame_len).map(|i| (i * 7 % 251) as u8).collect();
    let mut plain = vec![0u8; (frame_len * u64::from(slots)) as usize];
    let frames_per_round = 2 * slots as usize;
    let bytes_per_round = (frames_per_round as u64 * frame_len) as f64;

    // Warm-up: fault in every page of both destinations once.
    memcpy_round(&mut plain, &source, slots as usize);
    ring_round(&mut writer, frame, &source, slots as usize)?;

    let (mut memcpy_gbps, mut ring_gbps) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        memcpy_round(&mut plain, &source, frames_per_round);
        memcpy_gbps.push(bytes_per_round / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        ring_round(&mut writer, frame, &source, frames_per_round)?;
        ring_gbps.push(bytes_per_round / t.elapsed().as_secs_f64() / 1e9);
    }
    let m = median(&memcpy_gbps).context("no rounds")?;
    let r = median(&ring_gbps).context("no rounds")?;
    report::line(
        "ring.write_1080p",
        r / m,
        "x_memcpy",
        json!({
            "ring_gbps": report::round(r),
            "memcpy_gbps": report::round(m),
            "frame_ms": report::round(frame_len as f64 / (r * 1e9) * 1e3),
            "ring_mib": geometry.total_size() >> 20,
            "slots": slots,
            "rounds": rounds,
        }),
    );
    Ok(())
}

fn memcpy_round(dst: &mut [u8], src: &[u8], frames: usize) {
    let slots = dst.len() / src.len();
    for i in 0..frames {
        let at = (i % slots) * src.len();
        dst[at..at + src.len()].copy_from_slice(src);
    }
    std::hint::black_box(&dst);
}

fn ring_round(
    writer: &mut RingWriter,
    frame: FrameGeometry,
    src: &[u8],
    frames: usize,
) -> Result<()> {
    for _ in 0..frames {
        writer.write(frame, CaptureTime::now(), src)?;
    }
    Ok(())
}

// ---- wake-up latency ----------------------------------------------------------------------

fn wake_latency(samples: usize) -> Result<()> {
    const WARMUP: usize = 100;
    let frame = FrameGeometry::packed(64, 64, PixelFormat::Gray8)?;
    let wake_name = bench_ring_name("wake")?;
    let owner = RingOwner::create(wake_name.clone(), RingGeometry::new(4, frame.full_len())?)?;
    let mut writer = RingWriter::attach(owner.source().clone())?;
    let mut reader = ChildGuard::spawn(child_cmd("wake-reader", &wake_name, WARMUP + samples)?)?;
    let ready = reader.next_line()?;
    if !ready.contains("ready") {
        bail!("wake reader: {ready}");
    }
    let payload = vec![0u8; frame.full_len() as usize];
    for _ in 0..WARMUP + samples {
        // Let the reader go back to sleep: each publish must wake it from the futex.
        std::thread::sleep(Duration::from_micros(1000));
        let time = CaptureTime {
            realtime_ns: 0,
            monotonic_ns: monotonic_ns(),
        };
        writer.write(frame, time, &payload)?;
    }
    let latencies: Vec<f64> = serde_json::from_str(&reader.join()?)?;
    let measured = latencies
        .get(WARMUP.min(latencies.len())..)
        .unwrap_or_default();
    let p99 = percentile(measured, 99.0).context("wake reader reported nothing")?;
    report::line(
        "ring.wake_p99_us",
        p99,
        "us",
        json!({
            "p50_us": report::round(percentile(measured, 50.0).unwrap_or(f64::NAN)),
            "max_us": report::round(percentile(measured, 100.0).unwrap_or(f64::NAN)),
            "samples": measured.len(),
            "published": WARMUP + samples,
        }),
    );
    Ok(())
}

/// Child side: sleep in `wait_for_newer`, on each wake read the metadata and record
/// now − publish stamp. Prints the latencies (µs) as one JSON array when done.
fn wake_reader(ring: &str, samples: usize) -> Result<()> {
    let mut reader = ring_probe::attach_reader(&RingName::new(ring)?, Duration::from_secs(5))?;
    println!("{}", json!({"ready": true}));
    let mut latencies = Vec::with_capacity(samples);
    let mut last = reader.latest_seq();
    let give_up =
        Instant::now() + Duration::from_secs(60) + Duration::from_millis(samples as u64 * 5);
    while latencies.len() < samples && Instant::now() < give_up {
        let Some(_) = reader.wait_for_newer(last, Duration::from_secs(1)) else {
            continue;
        };
        if let Read::Frame(meta) = reader.read_latest_meta()? {
            let now = monotonic_ns();
            latencies.push(now.saturating_sub(meta.monotonic_ns) as f64 / 1e3);
            last = meta.seq;
        }
    }
    println!("{}", serde_json::to_string(&latencies)?);
    Ok(())
}

// ---- torn-read stress ---------------------------------------------------------------------

fn torn_stress(duration: Duration) -> Result<()> {
    let frame = FrameGeometry::packed(1024, 1024, PixelFormat::Gray8)?;
    // Three slots: the writer laps the checksumming reader often, yet some reads complete,
    // so both the reject path and the accept path run hot.
    let torn_name = bench_ring_name("torn")?;
    let _owner = RingOwner::create(torn_name.clone(), RingGeometry::new(3, frame.full_len())?)?;
    let mut writer = ChildGuard::spawn(child_cmd("writer", &torn_name, 0)?)?;
    writer.next_line()?; // attached
    let stop = AtomicBool::new(false);
    let summary: ReaderSummary = std::thread::scope(|s| {
        let reader = ring_probe::attach_reader(&torn_name, Duration::from_secs(5))?;
        let reader = s.spawn(|| ring_probe::run_reader(reader, &stop));
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))?
    })?;
    let written: ring_probe::WriterSummary = serde_json::from_str(&writer.finish()?)?;
    report::line(
        "ring.torn_accepted",
        summary.torn_accepted as f64,
        "frames",
        json!({
            "accepted": summary.accepted,
            "torn_detected": summary.torn_detected,
            "written": written.frames,
            "seconds": duration.as_secs(),
        }),
    );
    Ok(())
}

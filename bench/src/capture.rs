//! The capture suite, against the test RTSP server (moving test pattern, 640×480 @ 30 fps,
//! H.264) on localhost.
//!
//! - `capture.first_frame_ms`: capture process spawned → its first frame published in the
//!   ring (a reader here waits on the ring's futex); median of 5 starts.
//! - `capture.fps_ratio`: frames per second written at 15 Hz, 640×480, over 10 s, counted
//!   by sequence number between capture timestamps, ÷ 15.
//!
//! The capture and server processes are this binary re-executed (`capture-child`,
//! `rtsp-server`), running exactly the code of `orion-capture` and `rtsp-test-server`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use orion_ring::{PixelFormat, Read, RingGeometry, RingName, RingOwner, RingReader};
use orion_tests::child::ChildGuard;
use serde_json::json;

use crate::report;
use crate::stats::median;

#[derive(clap::Args)]
pub struct Options {
    /// Capture starts for the first-frame median.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Seconds of frames for the rate ratio.
    #[arg(long, default_value_t = 10)]
    rate_secs: u64,
}

pub fn run(opts: &Options) -> Result<()> {
    let (_server, url) = start_server()?;
    first_frame(&url, opts.starts)?;
    fps_ratio(&url, Duration::from_secs(opts.rate_secs))?;
    Ok(())
}

fn start_server() -> Result<(ChildGuard, String)> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "rtsp-server",
        "--width",
        "640",
        "--height",
        "480",
        "--fps",
        "30",
    ]);
    let mut server = ChildGuard::spawn(cmd)?;
    let ready: serde_json::Value = serde_json::from_str(&server.next_line()?)?;
    let url = ready["ready"]
        .as_str()
        .context("server did not say where it listens")?
        .to_owned();
    Ok((server, url))
}

fn ring(tag: &str) -> Result<RingOwner> {
    let name = RingName::new(&format!("/orion-bench-{}-{tag}", std::process::id()))?;
    Ok(RingOwner::create(
        name,
        RingGeometry::for_frames(4, 640, 480, PixelFormat::Rgb8)?,
    )?)
}

fn spawn_capture(ring: &RingOwner, url: &str, rate: &str) -> Result<ChildGuard> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "capture-child",
        "--ring",
        &ring.source().to_string(),
        "--source",
        url,
    ]);
    cmd.args(["--width", "640", "--height", "480", "--rate-hz", rate]);
    ChildGuard::spawn(cmd)
}

fn first_frame(url: &str, starts: usize) -> Result<()> {
    let mut samples = Vec::new();
    for i in 0..starts {
        let ring = ring(&format!("first{i}"))?;
        let reader = RingReader::attach(ring.source().clone())?;
        let t0 = Instant::now();
        let capture = spawn_capture(&ring, url, "15")?;
        if reader.wait_for_newer(0, Duration::from_secs(10)).is_none() {
            bail!(
                "no frame within 10 s of start {i}: {}",
                capture.stderr_text()
            );
        }
        samples.push(t0.elapsed().as_secs_f64() * 1e3);
        capture.signal(nix::sys::signal::Signal::SIGTERM)?;
    }
    let rounded: Vec<f64> = samples.iter().map(|&v| report::round(v)).collect();
    report::line(
        "capture.first_frame_ms",
        median(&samples).context("no starts")?,
        "ms",
        json!({"starts": rounded, "source": "rtsp 640x480@30 h264, localhost"}),
    );
    Ok(())
}

fn fps_ratio(url: &str, span: Duration) -> Result<()> {
    const RATE: f64 = 15.0;
    let ring = ring("fps")?;
    let mut reader = RingReader::attach(ring.source().clone())?;
    let capture = spawn_capture(&ring, url, "15")?;
    reader
        .wait_for_newer(0, Duration::from_secs(10))
        .context("no first frame")?;
    std::thread::sleep(Duration::from_secs(1)); // past start-up
    let first = newest(&mut reader)?;
    std::thread::sleep(span);
    let last = newest(&mut reader)?;
    capture.signal(nix::sys::signal::Signal::SIGTERM)?;
    let seconds = (last.1 - first.1) as f64 / 1e9;
    let measured = (last.0 - first.0) as f64 / seconds;
    report::line(
        "capture.fps_ratio",
        measured / RATE,
        "ratio",
        json!({"requested_hz": RATE, "measured_hz": report::round(measured), "seconds": report::round(seconds), "size": "640x480"}),
    );
    Ok(())
}

/// (seq, capture monotonic ns) of the newest frame.
fn newest(reader: &mut RingReader) -> Result<(u64, u64)> {
    for _ in 0..100 {
        if let Read::Frame(meta) = reader.read_latest_meta()? {
            return Ok((meta.seq, meta.monotonic_ns));
        }
    }
    bail!("could not read a frame")
}

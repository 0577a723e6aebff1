//! The supervisor suite: a real oriond (release build) with its real children on a test
//! pattern and synthetic models.
//!
//! - `supervisor.crash_detect_ms`: SIGKILL of a child (capture, and every fifth time the
//!   detector) → oriond recording its exit (the exit time oriond reports in its status,
//!   against the kill time on the same realtime clock); p99 over `kills` kills. The
//!   baseline is the same measurement for a child of this process reaped by a blocking
//!   `waitpid` — the floor any supervisor can reach.
//! - `supervisor.rss_kb`: oriond's resident set (VmRSS) while running all children, the
//!   largest of several samples taken while frames and detections flow.
//!
//! oriond spawns the children from its own directory, so the suite first makes sure the
//! release binaries are built (`cargo build --release` of the process crates).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::{Value, json};

use crate::report;
use crate::stats::{median, percentile};

#[derive(clap::Args)]
pub struct Options {
    /// Child kills for the crash-detection percentile.
    #[arg(long, default_value_t = 50)]
    kills: usize,
}

pub fn run(opts: &Options) -> Result<()> {
    build_binaries(false)?;
    let o = Oriond::start(None, "")?;
    let baseline = baseline_ms(20)?;
    let mut samples = Vec::with_capacity(opts.kills);
    for i in 0..opts.kills {
        let name = if i % 5 == 4 { "detector" } else { "capture" };
        samples.push(kill_and_wait(&o, name)?);
    }
    let p99 = percentile(&samples, 99.0).context("no samples")?;
    report::line(
        "supervisor.crash_detect_ms",
        p99,
        "ms",
        json!({
            "kills": samples.len(),
            "median_ms": report::round(median(&samples).unwrap_or(0.0)),
            "max_ms": report::round(samples.iter().copied().fold(0.0, f64::max)),
            "baseline_waitpid_p99_ms": report::round(baseline),
            "target_ms": 100,
        }),
    );
    let mut rss = 0u64;
    for _ in 0..10 {
        o.wait_all_running(START_TIMEOUT)?;
        rss = rss.max(rss_kb(o.pid())?);
        std::thread::sleep(Duration::from_millis(200));
    }
    let flowing = o.status()?["detector"]["results"].as_u64().unwrap_or(0);
    report::line(
        "supervisor.rss_kb",
        rss as f64,
        "kB",
        json!({"samples": 10, "detector_results": flowing, "target_kb": 10240}),
    );
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn find<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["processes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// Kills `name`, waits until it is RUNNING again; ms from the kill to oriond's record.
pub fn kill_and_wait(o: &Oriond, name: &str) -> Result<f64> {
    // Up longer than startsecs (0.5 s in the test config), or the kill is a failed start
    // and oriond rightly backs off.
    o.wait_for(&format!("{name} up for 0.6 s"), START_TIMEOUT, |s| {
        s["processes"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["state"] == "RUNNING"))
            && find(s, name).is_some_and(|p| p["uptime_s"].as_f64().unwrap_or(0.0) >= 0.6)
    })?;
    let pid = o.child_pid(name)?;
    let killed = now_us();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
    let status = o.wait_for(&format!("{name} back"), START_TIMEOUT, |s| {
        find(s, name)
            .is_some_and(|p| p["state"] == "RUNNING" && p["pid"].as_u64() != Some(u64::from(pid)))
    })?;
    let noticed = find(&status, name)
        .and_then(|p| p["last_exit"]["at_unix_us"].as_u64())
        .context("no exit recorded")?;
    if noticed < killed {
        bail!("exit recorded before the kill");
    }
    Ok((noticed - killed) as f64 / 1000.0)
}

/// The floor: SIGKILL a direct child (`sleep`) and reap it with a blocking wait.
pub fn baseline_ms(n: usize) -> Result<f64> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut child = Command::new("sleep").arg("60").spawn()?;
        std::thread::sleep(Duration::from_millis(5));
        let t = Instant::now();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL)?;
        child.wait()?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    percentile(&samples, 99.0).context("no samples")
}

pub fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// oriond and the children it spawns must sit next to this binary.
pub fn build_binaries(with_control: bool) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(orion_tests::fixtures::repo())
        .args(["build", "--release", "--quiet"]);
    // Every program oriond starts must be there, built from this tree (a stale one from an
    // older build would be measured otherwise).
    for package in [
        "orion-supervisor",
        "orion-capture",
        "orion-detector-bridge",
        "orion-control",
        "orion-snapshot",
    ] {
        cmd.args(["-p", package]);
    }
    if with_control {
        // The system suite also runs the camera (the RTSP test server).
        cmd.args(["-p", "orion-tests"]);
    }
    cmd.arg("--bins");
    let status = cmd.status().context("run cargo build")?;
    if !status.success() {
        bail!("building the release binaries failed");
    }
    Ok(())
}

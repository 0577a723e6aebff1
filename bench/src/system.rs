//! The system suite: Orion measured where its operator stands. The whole system runs as
//! shipped (release binaries): the RTSP server loops the street footage, oriond runs the
//! real YOLOv3-tiny model (and the real fall model as the "m" size) at 5 Hz, and one MQTT 5
//! client subscribed to `care/#` at QoS 1 sends the commands and receives everything —
//! acks, status and every detection. Percentiles are pooled over all samples; every line
//! carries its baseline, measured in the same run.
//!
//! - `system.ack_p99_ms` (embedded broker), `.nodelay_mosquitto`, `.stock_mosquitto`:
//!   `set_attention_rois` publish → its ack's arrival; baseline: the broker's own round trip
//!   (publish to a topic the client subscribes to), same broker, same client.
//! - `system.rate_change_gap_ms`: `set_inference_rate` (5 ↔ 4 Hz, make-before-break) → the
//!   capture-time gap from the old capture's last detected frame to the new one's first
//!   (where `capture_epoch` moves); baseline: the frame interval at the rate it changed
//!   from (target: at most 50 ms over it).
//! - `system.model_swap_gap`: `set_model_size` m ↔ l (the real fall model under two letters,
//!   ~160 ms an inference) with the worker about half busy (the rate set from the measured
//!   inference time) → the largest gap between detection arrivals from before it until
//!   the spare worker and the standby detector hold the new model again, in steady
//!   intervals (the median gap before the swap).
//! - `system.capture_kill_to_frame_ms`, `system.detector_kill_to_result_ms`,
//!   `system.worker_kill_to_result_ms`: SIGKILL → the first detection of a frame captured
//!   after the kill, in steady operation (the spare worker and the standby detector
//!   loaded); beside it the model load time (from a `set_model_size` ack).
//! - `system.crash_detect_ms`: SIGKILL → the exit time oriond's supervisor records when it
//!   acts on it (`last_exit.at_unix_us`); baseline: a blocking `waitpid` of a direct child.
//! - `system.oriond_rss_kb`: oriond's VmRSS with MQTT on and detections flowing.
//! - `system.standby_rss_kb`: the memory the standby detector costs (its bridge and loaded
//!   worker), beside the spare worker's and the serving worker's (reported, no target).
//! - `system.latency_p50_ms`: capture time → MQTT receipt, median; beside it the median
//!   inference time.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::operator::Operator;
use orion_tests::system::{Broker, Spec, System};
use serde_json::{Value, json};

use crate::report;
use crate::stats::{median, percentile};

#[derive(clap::Args)]
pub struct Options {
    /// Commands per broker for the ack percentiles.
    #[arg(long, default_value_t = 500)]
    commands: usize,
    /// Kills per process type.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Rate changes and model swaps.
    #[arg(long, default_value_t = 8)]
    changes: usize,
    /// Camera outages (30 s each) for `system.camera_return_to_detection_ms`.
    #[arg(long, default_value_t = 3)]
    outages: usize,
    /// Rooms at most for `system.rooms_per_box`.
    #[arg(long, default_value_t = 12)]
    max_rooms: usize,
    /// Model size of those rooms: n (YOLOv3-tiny, 640 and 320) or m (the fall model, 640).
    #[arg(long, default_value_t = 'n')]
    rooms_size: char,
    /// Run only these parts: acks, latency, rate, swap, kills, camera, crash, rss, memory,
    /// rooms (default: all)
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Options {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

const ACK: Duration = Duration::from_secs(60);

pub fn run(opts: &Options) -> Result<()> {
    crate::supervisor::build_binaries(true)?;
    if opts.wants("acks") {
        for (broker, name) in [
            (Broker::Embedded, "system.ack_p99_ms"),
            (Broker::NoDelay, "system.ack_p99_ms.nodelay_mosquitto"),
            (Broker::Stock, "system.ack_p99_ms.stock_mosquitto"),
        ] {
            acks(opts, broker, name)?;
        }
    }
    if opts.wants("memory") {
        crate::memory::room_memory()?;
    }
    if opts.wants("rooms") {
        crate::rooms::run(opts.max_rooms, opts.rooms_size)?;
    }
    if opts.wants("swap") {
        model_swaps(opts)?;
    }
    let mut sys = System::start(Spec::default())?;
    let mut op = sys.operator()?;
    op.wait_detections(0, 10, Duration::from_secs(60))?;
    if opts.wants("latency") {
        latency(&mut op)?;
    }
    if opts.wants("rate") {
        rate_changes(opts, &sys, &mut op)?;
    }
    if opts.wants("kills") {
        kills(opts, &sys, &mut op)?;
    }
    if opts.wants("camera") {
        camera_return(&mut sys, &mut op, opts.outages)?;
    }
    if opts.wants("crash") {
        crash_detect(&sys, opts.kills * 5)?;
    }
    if opts.wants("rss") {
        rss(&sys, &mut op)?;
    }
    Ok(())
}

fn rid_ack(op: &mut Operator, rid: &str) -> Result<(Value, Instant)> {
    op.ack(rid, ACK)
}

/// The broker's own round trip for this client: publish at QoS 0 to a topic it subscribes
/// to (no PUBACK on either side, so neither end's Nagle or delayed ACK is in it).
fn broker_round_trips(op: &mut Operator, n: usize) -> Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let topic = format!("care/bench-echo/{}", op.instance);
        let body = format!("echo-{i}-{}", orion_tests::unique());
        let t = Instant::now();
        op.publish(&topic, 0, body.clone().into_bytes())?;
        let from = op.seen.len().saturating_sub(20);
        let i = op.wait_from("echo", from, ACK, |a| a.topic == topic && a.payload == body)?;
        samples.push(op.seen[i].at.duration_since(t).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(samples)
}

fn acks(opts: &Options, broker: Broker, name: &str) -> Result<()> {
    let sys = System::start(Spec {
        broker,
        ..Spec::default()
    })?;
    let mut op = sys.operator()?;
    op.wait_detections(0, 5, Duration::from_secs(60))?;
    let baseline = broker_round_trips(&mut op, 100)?;
    let mut samples = Vec::with_capacity(opts.commands);
    for i in 0..opts.commands {
        // A different region each time, so every command changes the detector (and the
        // retained status it publishes).
        let x = (i % 50) as f64 / 100.0;
        let roi = json!({"rois": [{"x": x, "y": 0.1, "width": 0.4, "height": 0.5}]});
        let (rid, sent) = op.send("set_attention_rois", roi)?;
        let (ack, at) = rid_ack(&mut op, &rid)?;
        if ack["status"] != "success" {
            bail!("{name}: {ack}");
        }
        samples.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        // Spread over the detection cycle (5 Hz) so acks meet detections and status.
        std::thread::sleep(Duration::from_millis(17 + (i as u64 * 7) % 23));
        if i % 100 == 0 {
            op.seen.clear();
        }
    }
    let detections = op.detections_from(0).len();
    report::percentile_line(
        name,
        &samples,
        99.0,
        "ms",
        json!({
            "baseline_broker_round_trip_p99_ms": report::round(percentile(&baseline, 99.0).unwrap_or(0.0)),
            "baseline_broker_round_trip_median_ms": report::round(median(&baseline).unwrap_or(0.0)),
            "client": "MQTT 5, subscribed to care/# at QoS 1, commands at QoS 1",
            "detections_seen_last_100_commands": detections,
            "target_ms": if broker == Broker::Stock { Value::Null } else { json!(20) },
        }),
    )
}

fn capture_ts(d: &Value) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(d["capture_ts"].as_str()?).ok()
}

fn latency(op: &mut Operator) -> Result<()> {
    let from = op.seen.len();
    op.wait_detections(from, 100, Duration::from_secs(60))?;
    let mut latency = Vec::new();
    let mut inference = Vec::new();
    for i in op.detections_from(from) {
        let a = &op.seen[i];
        let d = a.json().context("detection JSON")?;
        let captured = capture_ts(&d).context("capture_ts")?;
        if let Ok(l) = a.at_unix.duration_since(captured) {
            latency.push(l.as_secs_f64() * 1000.0);
        }
        if let Some(ms) = d["timing"]["inference_ms"].as_f64() {
            inference.push(ms);
        }
    }
    let p50 = median(&latency).context("no latency samples")?;
    let inf = median(&inference).unwrap_or(0.0);
    report::line(
        "system.latency_p50_ms",
        p50,
        "ms",
        json!({
            "detections": latency.len(),
            "p99_ms": report::round(percentile(&latency, 99.0).unwrap_or(0.0)),
            "median_inference_ms": report::round(inf),
            "target_ms": report::round(inf + 15.0),
        }),
    );
    Ok(())
}

/// Capture times of the detections that arrived from index `from` on, sorted.
fn rate_changes(opts: &Options, sys: &System, op: &mut Operator) -> Result<()> {
    let mut gaps = Vec::new();
    // Each gap less the frame interval at the rate it changed from.
    let mut excess = Vec::new();
    let mut modes = Vec::new();
    let mut rate: f64 = 5.0;
    for _ in 0..opts.changes {
        let from = op.seen.len();
        op.wait_detections(from, 5, Duration::from_secs(30))?;
        let before = sys.o.child_pid("capture")?;
        let old_interval_ms = 1000.0 / rate;
        rate = if rate == 5.0 { 4.0 } else { 5.0 };
        let (rid, _) = op.send("set_inference_rate", json!({"rate_hz": rate}))?;
        let (ack, _) = rid_ack(op, &rid)?;
        if ack["status"] != "success" {
            bail!("rate change: {ack}");
        }
        modes.push(ack["data"]["handover"]["mode"].clone());
        let after = op.seen.len();
        op.wait_detections(after, 5, Duration::from_secs(30))?;
        if sys.o.child_pid("capture")? == before {
            bail!("the capture did not restart for a new rate");
        }
        let gap = op
            .epoch_switch_gap(from)
            .context("no capture epoch change among the detections")?
            .as_secs_f64()
            * 1000.0;
        gaps.push(gap);
        excess.push(gap - old_interval_ms);
    }
    let worst_excess = excess.iter().copied().fold(f64::MIN, f64::max);
    report::line(
        "system.rate_change_gap_ms",
        gaps.iter().copied().fold(0.0, f64::max),
        "ms",
        json!({
            "changes": gaps.len(),
            "median_ms": report::round(median(&gaps).unwrap_or(0.0)),
            "baseline_frame_interval_ms": "200 (5 Hz) / 250 (4 Hz), the rate changed from",
            "over_old_interval_ms_max": report::round(worst_excess),
            "measured": "capture_ts of the old capture's last detected frame to the new one's first (capture_epoch)",
            "handover": modes,
            "target": "<= the old rate's frame interval + 50 ms",
            "target_met": worst_excess <= 50.0,
        }),
    );
    Ok(())
}

/// Swaps m ↔ l — the real fall model under two size letters, so both sides cost the same
/// (~160 ms an inference, the worker about half busy at 3 Hz) and a gap is a pause, not a
/// change of model speed.
fn model_swaps(opts: &Options) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("orion-bench-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let real = orion_tests::fixtures::fixture("models/real")?;
    std::fs::copy(
        real.join("yolo11m_fall_640.onnx"),
        dir.join("yolo11m_fall_640.onnx"),
    )?;
    std::fs::copy(
        real.join("yolo11m_fall_640.onnx"),
        dir.join("yolo11l_fall_640.onnx"),
    )?;
    let result = swaps(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn swaps(opts: &Options, models: &std::path::Path) -> Result<()> {
    let sys = System::start(Spec {
        rate_hz: 2.0,
        size: 'm',
        models: Some(models.to_path_buf()),
        ..Spec::default()
    })?;
    let mut op = sys.operator()?;
    op.wait_detections(0, 10, Duration::from_secs(60))?;
    // About half busy on this machine: a rate of one frame per two inference times.
    let inference: Vec<f64> = op
        .detections_from(0)
        .iter()
        .filter_map(|&i| op.seen[i].json()?["timing"]["inference_ms"].as_f64())
        .collect();
    let rate = ((500.0 / median(&inference).context("no timing")?) * 10.0).floor() / 10.0;
    let rate = rate.clamp(0.5, 5.0);
    let (rid, _) = op.send("set_inference_rate", json!({"rate_hz": rate}))?;
    let (ack, _) = rid_ack(&mut op, &rid)?;
    if ack["status"] != "success" {
        bail!("rate {rate}: {ack}");
    }
    let mut ratios = Vec::new();
    let mut per_swap = Vec::new();
    let mut steady_all = Vec::new();
    let mut loads = Vec::new();
    let mut busy = Vec::new();
    for i in 0..opts.changes {
        let size = if i % 2 == 0 { "l" } else { "m" };
        // Steady state before the swap.
        let from = op.seen.len();
        op.wait_detections(from, 8, Duration::from_secs(30))?;
        let steady_idx = op.detections_from(from);
        let steady: Vec<f64> = steady_idx
            .windows(2)
            .map(|w| {
                op.seen[w[1]]
                    .at
                    .duration_since(op.seen[w[0]].at)
                    .as_secs_f64()
                    * 1000.0
            })
            .collect();
        let steady_ms = median(&steady).context("steady")?;
        steady_all.push(steady_ms);
        for &j in &steady_idx {
            if let Some(ms) = op.seen[j]
                .json()
                .and_then(|d| d["timing"]["inference_ms"].as_f64())
            {
                busy.push(ms / steady_ms);
            }
        }
        // A running box has its spare loaded (the model change goes through it) and its
        // standby detector.
        let spare =
            sys.o.wait_spare_ready(Duration::from_secs(60))?["detector"]["spare_worker_pid"]
                .clone();
        let standby = sys.o.wait_standby_ready(Duration::from_secs(90))?["detector_standby"]["current"]["pid"].clone();
        let last_before = *steady_idx.last().context("no detection")?;
        let (rid, _) = op.send("set_model_size", json!({"size": size}))?;
        let (ack, acked_at) = rid_ack(&mut op, &rid)?;
        if ack["status"] != "success" {
            bail!("swap to {size}: {ack}");
        }
        if let Some(ms) = ack["data"]["load_ms"].as_f64() {
            loads.push(ms);
        }
        let after = op.seen.len();
        op.wait_detections(after, 6, Duration::from_secs(30))?;
        // Until both stand-ins hold the new model again (the spare, then the standby
        // detector, each loading at niceness 19): their loads' effect counts too.
        sys.o.wait_for(
            "the spare and the standby reloaded",
            Duration::from_secs(120),
            |s| {
                let (d, current) = (&s["detector"], &s["detector_standby"]["current"]);
                d["spare_worker_ready"] == true
                    && d["spare_worker_pid"] != spare
                    && current["ready"] == true
                    && current["pid"] != standby
            },
        )?;
        let stand_ins_ms = acked_at.elapsed().as_secs_f64() * 1000.0;
        op.pull(Duration::from_millis(100));
        let mut idx = vec![last_before];
        idx.extend(op.detections_from(last_before + 1));
        let gaps: Vec<(f64, usize)> = idx
            .windows(2)
            .map(|w| {
                let ms = op.seen[w[1]]
                    .at
                    .duration_since(op.seen[w[0]].at)
                    .as_secs_f64()
                    * 1000.0;
                (ms, w[1])
            })
            .collect();
        let (gap, ends) = gaps
            .iter()
            .copied()
            .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
        ratios.push(gap / steady_ms);
        // Where the largest gap ends, relative to the ack (negative: while the new model
        // loaded), and the inference time of the detection that ends it.
        let at = op.seen[ends].at;
        let from_ack_ms = if at >= acked_at {
            at.duration_since(acked_at).as_secs_f64() * 1000.0
        } else {
            -(acked_at.duration_since(at).as_secs_f64() * 1000.0)
        };
        let inference = op.seen[ends]
            .json()
            .and_then(|d| d["timing"]["inference_ms"].as_f64());
        per_swap.push(json!({
            "to": size,
            "gap_ms": report::round(gap),
            "ratio": report::round(gap / steady_ms),
            "loaded_by": ack["data"]["loaded_by"],
            "gap_ends_after_ack_ms": report::round(from_ack_ms),
            "stand_ins_reloaded_after_ack_ms": report::round(stand_ins_ms),
            "inference_ms_of_gap_end": inference.map(report::round),
        }));
    }
    report::line(
        "system.model_swap_gap",
        ratios.iter().copied().fold(0.0, f64::max),
        "x steady interval",
        json!({
            "swaps": ratios.len(),
            "median": report::round(median(&ratios).unwrap_or(0.0)),
            "baseline_steady_interval_ms": report::round(median(&steady_all).unwrap_or(0.0)),
            "worker_busy_fraction_median": report::round(median(&busy).unwrap_or(0.0)),
            "per_swap": per_swap,
            "models": "m and l: the real fall detector (640)",
            "rate_hz": rate,
            "load_ms_median": report::round(median(&loads).unwrap_or(0.0)),
            "target": 1.5,
        }),
    );
    Ok(())
}

fn victim_pid(sys: &System, victim: &str) -> Result<u32> {
    if victim == "worker" {
        return sys.o.status()?["detector"]["worker_pid"]
            .as_u64()
            .map(|p| p as u32)
            .context("no worker pid");
    }
    sys.o.child_pid(victim)
}

/// How long the running model (n) takes to load: swap away and back, read the ack.
fn load_time_ms(op: &mut Operator) -> Result<f64> {
    for size in ["m", "n"] {
        let (rid, _) = op.send("set_model_size", json!({"size": size}))?;
        let (ack, _) = rid_ack(op, &rid)?;
        if ack["status"] != "success" {
            bail!("swap to {size}: {ack}");
        }
        if size == "n" {
            return ack["data"]["load_ms"]
                .as_f64()
                .context("no load_ms in the ack");
        }
    }
    bail!("unreachable")
}

fn kills(opts: &Options, sys: &System, op: &mut Operator) -> Result<()> {
    let load_ms = load_time_ms(op)?;
    for (victim, name, target) in [
        ("capture", "system.capture_kill_to_frame_ms", json!(1000)),
        ("detector", "system.detector_kill_to_result_ms", json!(600)),
        ("worker", "system.worker_kill_to_result_ms", json!(400)),
    ] {
        let mut samples = Vec::new();
        for _ in 0..opts.kills {
            sys.o.wait_all_running(Duration::from_secs(60))?;
            if victim == "worker" {
                // A crash in steady operation: the spare is loaded (a crash loop within
                // ~3 s of the last has none; the soak measures that mix).
                sys.o.wait_spare_ready(Duration::from_secs(60))?;
            }
            if victim == "detector" {
                // Likewise the standby detector (ADR 0008).
                sys.o.wait_standby_ready(Duration::from_secs(60))?;
            }
            let from = op.seen.len();
            op.wait_detections(from, 3, Duration::from_secs(30))?;
            let pid = victim_pid(sys, victim)?;
            let (killed, t) = (SystemTime::now(), Instant::now());
            kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
            let mark = op.seen.len();
            let i = op.wait_fresh_detection(mark, killed, Duration::from_secs(60))?;
            samples.push(op.seen[i].at.duration_since(t).as_secs_f64() * 1000.0);
        }
        report::line(
            name,
            samples.iter().copied().fold(0.0, f64::max),
            "ms",
            json!({
                "kills": samples.len(),
                "median_ms": report::round(median(&samples).unwrap_or(0.0)),
                "model_load_ms": report::round(load_ms),
                "measured": "SIGKILL to the arrival of the first detection of a frame captured after it",
                "target_ms": target,
            }),
        );
    }
    Ok(())
}

/// The camera (the RTSP server) gone for 30 s, then back: from the moment it listens again
/// to the arrival of the first detection of a frame captured after that.
fn camera_return(sys: &mut System, op: &mut Operator, outages: usize) -> Result<()> {
    const OUTAGE: Duration = Duration::from_secs(30);
    let mut samples = Vec::new();
    for _ in 0..outages {
        let from = op.seen.len();
        op.wait_detections(from, 3, Duration::from_secs(60))?;
        sys.camera.kill()?;
        std::thread::sleep(OUTAGE);
        sys.camera.resume()?;
        let (back, t) = (SystemTime::now(), Instant::now());
        let mark = op.seen.len();
        let i = op.wait_fresh_detection(mark, back, ACK)?;
        samples.push(op.seen[i].at.duration_since(t).as_secs_f64() * 1000.0);
    }
    report::line(
        "system.camera_return_to_detection_ms",
        samples.iter().copied().fold(0.0, f64::max),
        "ms",
        json!({
            "outages": samples.len(),
            "outage_s": OUTAGE.as_secs(),
            "samples_ms": samples.iter().map(|v| report::round(*v)).collect::<Vec<_>>(),
            "measured": "the RTSP server listening again after 30 s away to the arrival of the first detection of a frame captured after that",
            "target_ms": 1500,
        }),
    );
    Ok(())
}

fn crash_detect(sys: &System, n: usize) -> Result<()> {
    let baseline = crate::supervisor::baseline_ms(20)?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let name = if i % 5 == 4 { "detector" } else { "capture" };
        samples.push(crate::supervisor::kill_and_wait(&sys.o, name)?);
    }
    report::percentile_line(
        "system.crash_detect_ms",
        &samples,
        99.0,
        "ms",
        json!({
            "measured": "SIGKILL to the supervisor's state change (last_exit.at_unix_us)",
            "baseline_waitpid_p99_ms": report::round(baseline),
            "target_ms": 100,
        }),
    )
}

fn rss(sys: &System, op: &mut Operator) -> Result<()> {
    let mut rss = 0u64;
    let from = op.seen.len();
    for _ in 0..20 {
        sys.o.wait_all_running(Duration::from_secs(60))?;
        rss = rss.max(crate::supervisor::rss_kb(sys.o.pid())?);
        op.pull(Duration::from_millis(250));
    }
    let flowing = op.detections_from(from).len();
    report::line(
        "system.oriond_rss_kb",
        rss as f64,
        "kB",
        json!({"samples": 20, "detections_meanwhile": flowing, "mqtt": "on", "target_kb": 10240}),
    );
    standby_memory(sys)
}

/// What the two stand-ins cost in memory: the standby detector (its bridge and its loaded
/// worker) and the detector's spare worker, next to the serving worker.
fn standby_memory(sys: &System) -> Result<()> {
    let status = sys.o.wait_standby_ready(Duration::from_secs(60))?;
    let status = match status["detector"]["spare_worker_ready"] == true {
        true => status,
        false => sys.o.wait_spare_ready(Duration::from_secs(60))?,
    };
    let pid = |v: &Value| v.as_u64().map(|p| p as u32).context("no pid in the status");
    let rss = |p: u32| crate::supervisor::rss_kb(p);
    let standby = pid(&status["detector_standby"]["current"]["pid"])?;
    let standby_workers: u64 =
        std::fs::read_to_string(format!("/proc/{standby}/task/{standby}/children"))?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(|p| rss(p).unwrap_or(0))
            .sum();
    let standby_bridge = rss(standby)?;
    let spare = rss(pid(&status["detector"]["spare_worker_pid"])?)?;
    let worker = rss(pid(&status["detector"]["worker_pid"])?)?;
    report::line(
        "system.standby_rss_kb",
        (standby_bridge + standby_workers) as f64,
        "kB",
        json!({
            "standby_bridge_kb": standby_bridge,
            "standby_worker_kb": standby_workers,
            "spare_worker_kb": spare,
            "serving_worker_kb": worker,
            "model": status["detector"]["model"],
            "measured": "VmRSS of the standby detector and its loaded worker (reported, no target)",
        }),
    );
    Ok(())
}

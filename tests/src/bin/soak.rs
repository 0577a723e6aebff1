//! Crash-isolation soak: the whole system (stock mosquitto, the RTSP server looping the
//! footage, the real model) while a random child — capture, detector, the Python worker,
//! control — is SIGKILLed every 2–5 s, commands go out at 5/s from an operator's client
//! subscribed to `care/#`, and the camera (RTSP server) is restarted every minute.
//!
//! `soak [--duration-s 180] [--seed N]` prints one JSON line: kills per process type, whether
//! oriond survived, commands sent / acked / lost / duplicated, the desired state at the end
//! against the last commanded one, torn frames, zombies, oriond's descriptors and sockets
//! after start-up and at the end, and per process type the longest (and median) time from
//! a kill to the next detection of a frame captured after it. Exits 1 if any promise broke.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::operator::Operator;
use orion_tests::system::{Spec, System};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// How long to run, seconds
    #[arg(long, default_value_t = 180)]
    duration_s: u64,
    /// Random seed (default: from the clock; printed in the summary)
    #[arg(long)]
    seed: Option<u64>,
}

/// xorshift64*: enough randomness for picking victims and commands, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The desired-state fields the soak's commands change.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    paused: bool,
    rois: Option<Value>,
    auto_focus: bool,
    strategy: String,
    rate_hz: f64,
}

struct Sent {
    command: String,
    params: Value,
}

/// The next command. A pause is short (the resume follows as the next command), so most
/// kills happen while inferring, where recovery can be measured.
fn command(rng: &mut Rng, rate_changes: &mut Instant, paused: &mut bool) -> (&'static str, Value) {
    if *paused {
        *paused = false;
        return ("resume_inference", json!({}));
    }
    // A rate change restarts the capture: about one every 20 s.
    if rate_changes.elapsed() > Duration::from_secs(20) {
        *rate_changes = Instant::now();
        let rate = [2.0, 3.0, 5.0][rng.below(3) as usize];
        return ("set_inference_rate", json!({"rate_hz": rate}));
    }
    match rng.below(20) {
        0 => {
            *paused = true;
            ("pause_inference", json!({}))
        }
        1 | 2 => ("resume_inference", json!({})),
        3 | 12..=15 => {
            let (x, y) = (rng.unit() * 0.5, rng.unit() * 0.5);
            let roi = json!({"x": x, "y": y, "width": 0.4, "height": 0.4});
            ("set_attention_rois", json!({"rois": [roi]}))
        }
        5 => {
            let s = ["simple", "smoothing", "velocity"][rng.below(3) as usize];
            ("set_auto_focus_strategy", json!({"strategy": s}))
        }
        6 | 7 => {
            if rng.below(2) == 0 {
                ("enable_auto_focus", json!({}))
            } else {
                ("disable_auto_focus", json!({}))
            }
        }
        8..=11 => ("get_status", json!({})),
        _ => ("clear_attention_rois", json!({})),
    }
}

fn apply(e: &mut Expected, command: &str, params: &Value) {
    match command {
        "pause_inference" => e.paused = true,
        "resume_inference" => e.paused = false,
        "set_attention_rois" => e.rois = Some(params["rois"].clone()),
        "clear_attention_rois" => e.rois = None,
        "enable_auto_focus" => e.auto_focus = true,
        "disable_auto_focus" => e.auto_focus = false,
        "set_auto_focus_strategy" => e.strategy = params["strategy"].as_str().unwrap_or("").into(),
        "set_inference_rate" => e.rate_hz = params["rate_hz"].as_f64().unwrap_or(0.0),
        _ => {}
    }
}

fn observed(desired: &Value) -> Expected {
    Expected {
        paused: desired["paused"].as_bool().unwrap_or(false),
        rois: desired["rois"].as_array().map(|r| Value::Array(r.clone())),
        auto_focus: desired["auto_focus"].as_bool().unwrap_or(false),
        strategy: desired["auto_focus_params"]["strategy"]
            .as_str()
            .unwrap_or("")
            .into(),
        rate_hz: desired["rate_hz"].as_f64().unwrap_or(0.0),
    }
}

/// Torn frames counted by each detector process (its counter starts at 0 when it starts).
fn record_torn(torn: &mut HashMap<u64, u64>, status: &Value) {
    let detector = status["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "detector"))
        .and_then(|p| p["pid"].as_u64());
    if let (Some(pid), Some(t)) = (detector, status["detector"]["frames_torn"].as_u64()) {
        let e = torn.entry(pid).or_default();
        *e = (*e).max(t);
    }
}

/// oriond's open descriptors: (all, sockets, memfds).
fn descriptors(pid: u32) -> (usize, usize, usize) {
    let mut all = 0;
    let (mut sockets, mut memfds) = (0, 0);
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in entries.flatten() {
            all += 1;
            let link = std::fs::read_link(e.path()).unwrap_or_default();
            let link = link.to_string_lossy();
            if link.starts_with("socket:") {
                sockets += 1;
            } else if link.starts_with("/memfd:") {
                memfds += 1;
            }
        }
    }
    (all, sockets, memfds)
}

/// Zombie processes whose parent is `parent`.
fn zombies_of(parents: &[u32]) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid = fields
            .get(1)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        if fields.first() == Some(&"Z") && parents.contains(&ppid) {
            found.push(pid);
        }
    }
    found
}

/// Descriptor counts once they stop changing (connections being closed settle).
fn settled_descriptors(pid: u32) -> (usize, usize, usize) {
    let mut last = descriptors(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = descriptors(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let mut rng = Rng(seed);
    let mut sys = System::start(Spec::default()).context("start the system")?;
    let mut op: Operator = sys.operator()?;
    op.wait_detections(0, 3, Duration::from_secs(60))?;
    let oriond = sys.o.pid();
    // Descriptors are compared with the standby detector loaded at both ends (its pipes
    // and connection are oriond's).
    sys.o.wait_standby_ready(Duration::from_secs(90))?;
    let fds_start = settled_descriptors(oriond);
    let status0 = sys.o.status()?;
    let d0 = &status0["desired"];
    let mut expected = observed(d0);

    let started = Instant::now();
    let run_for = Duration::from_secs(args.duration_s);
    let mut sent: HashMap<String, Sent> = HashMap::new();
    let mut kills: Vec<(String, SystemTime, Instant)> = Vec::new();
    let mut next_kill = Instant::now() + Duration::from_millis(2000 + rng.below(3000));
    let mut next_command = Instant::now();
    let mut next_camera_restart = Instant::now() + Duration::from_secs(60);
    let mut camera_restarts = 0;
    let mut rate_changes = Instant::now();
    let mut pausing = false;
    let mut torn: HashMap<u64, u64> = HashMap::new();
    let mut oriond_died = false;

    while started.elapsed() < run_for {
        op.pull(Duration::from_millis(20));
        if Instant::now() >= next_command {
            next_command += Duration::from_millis(200);
            let (name, params) = command(&mut rng, &mut rate_changes, &mut pausing);
            let (rid, _) = op.send(name, params.clone())?;
            sent.insert(
                rid,
                Sent {
                    command: name.into(),
                    params,
                },
            );
        }
        if Instant::now() >= next_camera_restart {
            next_camera_restart += Duration::from_secs(60);
            sys.camera.kill()?;
            std::thread::sleep(Duration::from_millis(500));
            sys.camera.resume()?;
            camera_restarts += 1;
        }
        if Instant::now() >= next_kill {
            next_kill = Instant::now() + Duration::from_millis(2000 + rng.below(3000));
            let Ok(status) = sys.o.status() else {
                oriond_died = true;
                break;
            };
            record_torn(&mut torn, &status);
            let victim = ["capture", "detector", "worker", "control"][rng.below(4) as usize];
            let pid = if victim == "worker" {
                status["detector"]["worker_pid"].as_u64()
            } else {
                status["processes"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == victim))
                    .and_then(|p| p["pid"].as_u64())
            };
            if let Some(pid) = pid
                && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
            {
                kills.push((victim.into(), SystemTime::now(), Instant::now()));
            }
        }
    }
    if !oriond_died && sys.o.status().is_err() {
        oriond_died = true;
    }
    // The last command: inference on (the run ends the way a room is left).
    if !oriond_died {
        let (rid, _) = op.send("resume_inference", json!({}))?;
        sent.insert(
            rid,
            Sent {
                command: "resume_inference".into(),
                params: json!({}),
            },
        );
    }

    // Every command answered? Give the last ones time (a detector or control restart).
    let health = op.topic("health");
    let deadline = Instant::now() + Duration::from_secs(90);
    let acked = |op: &Operator| -> HashMap<String, Vec<usize>> {
        let mut m: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in op.seen.iter().enumerate() {
            if a.topic == health
                && let Some(rid) = a
                    .json()
                    .and_then(|v| v["request_id"].as_str().map(String::from))
            {
                m.entry(rid).or_default().push(i);
            }
        }
        m
    };
    loop {
        // One pass over what arrived per check (a 30-minute run holds ~20 000 messages).
        let answered = acked(&op);
        if Instant::now() >= deadline || sent.keys().all(|k| answered.contains_key(k)) {
            break;
        }
        op.pull(Duration::from_millis(200));
    }
    // And every process back.
    let _ = sys.o.wait_all_running(Duration::from_secs(90));
    // And, after the last kill, a fresh detection (a late kill is not a lost recovery).
    if let Some((_, last_kill, _)) = kills.last() {
        let topic = op.detection_topic();
        let fresh = |op: &Operator| {
            op.seen.iter().any(|a| {
                a.topic == topic
                    && a.json()
                        .and_then(|d| d["capture_ts"].as_str().map(String::from))
                        .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                        .is_some_and(|t| t > *last_kill)
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !fresh(&op) {
            op.pull(Duration::from_millis(200));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    op.pull(Duration::from_millis(200));
    let acks = acked(&op);
    let lost: Vec<&String> = sent.keys().filter(|k| !acks.contains_key(*k)).collect();
    // A command the broker redelivered (orion-control died between publishing its ack and
    // acknowledging it to the broker) is answered again: allowed only as the same answer,
    // marked `redelivered`. Anything else answered twice is a duplicate.
    let answer = |i: usize| {
        op.seen[i]
            .json()
            .map(|v| (v["status"].clone(), v["data"].clone(), v["error"].clone()))
    };
    let mut reacked = 0;
    let mut duplicated: Vec<&String> = Vec::new();
    for (rid, is) in &acks {
        let Some((first, rest)) = is.split_first() else {
            continue;
        };
        if rest.is_empty() || !sent.contains_key(rid) {
            continue;
        }
        let repeats_ok = rest.iter().all(|&i| {
            answer(i) == answer(*first)
                && op.seen[i].json().is_some_and(|v| v["redelivered"] == true)
        });
        if repeats_ok {
            reacked += rest.len();
        } else if let Some((k, _)) = sent.get_key_value(rid) {
            duplicated.push(k);
        }
    }

    // The desired state: the successful commands folded in the order they were answered.
    let mut answered: Vec<(usize, &Sent)> = sent
        .iter()
        .filter_map(|(rid, s)| {
            let i = *acks.get(rid)?.first()?;
            let ok = op.seen[i].json().is_some_and(|v| v["status"] == "success");
            ok.then_some((i, s))
        })
        .collect();
    answered.sort_by_key(|(i, _)| *i);
    for (_, s) in &answered {
        apply(&mut expected, &s.command, &s.params);
    }
    let final_status = sys.o.status()?;
    let repeats_recognized = final_status["oriond"]["commands_repeated_not_applied"]
        .as_u64()
        .unwrap_or(0) as usize;
    let applied_twice = reacked.saturating_sub(repeats_recognized);
    let got = observed(&final_status["desired"]);
    let desired_ok = got == expected;
    record_torn(&mut torn, &final_status);
    let torn_total: u64 = torn.values().sum();

    // Kill → first detection of a frame captured after the kill. Inference is off while
    // paused, so a kill made while paused, or followed by a pause before anything came
    // back, measures nothing (counted apart); every other kill must be followed by one.
    let pauses: Vec<(Instant, bool)> = answered
        .iter()
        .filter_map(|(i, s)| match s.command.as_str() {
            "pause_inference" => Some((op.seen[*i].at, true)),
            "resume_inference" => Some((op.seen[*i].at, false)),
            _ => None,
        })
        .collect();
    let paused_at = |t: Instant| {
        pauses
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(d0["paused"] == true, |(_, p)| *p)
    };
    let topic = op.detection_topic();
    let mut recovery: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut unmeasured: BTreeMap<String, usize> = BTreeMap::new();
    let mut recovered: BTreeMap<String, usize> = BTreeMap::new();
    for (victim, at, at_instant) in &kills {
        let first = op.seen.iter().find(|a| {
            a.topic == topic
                && a.at > *at_instant
                && a.json()
                    .and_then(|d| d["capture_ts"].as_str().map(String::from))
                    .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                    .is_some_and(|t| t > *at)
        });
        let until = first.map_or(Instant::now(), |a| a.at);
        let paused_meanwhile = paused_at(*at_instant)
            || pauses
                .iter()
                .any(|(t, p)| *p && *t > *at_instant && *t <= until);
        // Every kill must be followed by a fresh detection (every pause is resumed); the
        // time is taken only when no pause stretched it.
        match first {
            Some(_) if paused_meanwhile => {
                *recovered.entry(victim.clone()).or_default() += 1;
                *unmeasured.entry(victim.clone()).or_default() += 1;
            }
            Some(a) => {
                *recovered.entry(victim.clone()).or_default() += 1;
                recovery
                    .entry(victim.clone())
                    .or_default()
                    .push(a.at.duration_since(*at_instant).as_secs_f64() * 1000.0)
            }
            None => {}
        }
    }
    let mut per_type = serde_json::Map::new();
    for victim in ["capture", "detector", "worker", "control"] {
        let n = kills.iter().filter(|k| k.0 == victim).count();
        let mut r = recovery.remove(victim).unwrap_or_default();
        per_type.insert(
            victim.into(),
            json!({
                "kills": n,
                "recovered": recovered.get(victim).copied().unwrap_or(0),
                "timed": r.len(),
                "while_paused": unmeasured.get(victim).copied().unwrap_or(0),
                "kill_to_detection_ms_max": percentile(&mut r, 1.0),
                "kill_to_detection_ms_p50": percentile(&mut r, 0.5),
            }),
        );
    }
    let standby = sys.o.wait_standby_ready(Duration::from_secs(90))?["detector_standby"].clone();
    let fds_end = settled_descriptors(oriond);
    let detector = sys.o.child_pid("detector").unwrap_or(0);
    let zombies = zombies_of(&[oriond, detector]);
    let shm_left: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&sys.o.instance))
                .collect()
        })
        .unwrap_or_default();
    let oriond_alive =
        !oriond_died && sys.o.pid() == oriond && !orion_tests::oriond::process_gone(oriond);
    let summary = json!({
        "soak": "crash_isolation",
        "seed": seed,
        "duration_s": started.elapsed().as_secs_f64().min(run_for.as_secs_f64() + 1.0),
        "kills": per_type,
        "kills_total": kills.len(),
        // Detector kills the standby detector took over (the rest: a fresh start).
        "detector_standby_takeovers": standby["takeovers"],
        "camera_restarts": camera_restarts,
        "oriond_survived": oriond_alive,
        "commands_sent": sent.len(),
        "commands_acked": sent.len() - lost.len(),
        "commands_lost": lost.len(),
        "commands_duplicated": duplicated.len(),
        "commands_reacked_after_redelivery": reacked,
        // Each repeated ack must come from oriond recognising the repeat; one it did not
        // recognise was applied a second time.
        "commands_repeated_not_applied": repeats_recognized,
        "commands_applied_twice": applied_twice,
        "desired_matches_last_commanded": desired_ok,
        "desired": final_status["desired"],
        "torn_frames": torn_total,
        "zombies": zombies.len(),
        "oriond_fds": {"after_start": fds_start.0, "at_end": fds_end.0},
        "oriond_sockets": {"after_start": fds_start.1, "at_end": fds_end.1},
        "oriond_memfds": {"after_start": fds_start.2, "at_end": fds_end.2},
        "shm_objects_left": shm_left.len(),
    });
    println!("{summary}");
    let mut broken = Vec::new();
    if !oriond_alive {
        broken.push("oriond died".to_string());
    }
    if !lost.is_empty() {
        broken.push(format!("lost acks: {lost:?}"));
    }
    if !duplicated.is_empty() {
        let shown: Vec<Vec<String>> = duplicated
            .iter()
            .take(5)
            .map(|rid| {
                acks.get(*rid)
                    .map(|is| is.iter().map(|&i| op.seen[i].payload.clone()).collect())
                    .unwrap_or_default()
            })
            .collect();
        broken.push(format!(
            "duplicated acks: {duplicated:?}; the first: {shown:?}"
        ));
    }
    if !desired_ok {
        broken.push(format!("desired {got:?} != expected {expected:?}"));
    }
    if applied_twice != 0 {
        broken.push(format!(
            "{applied_twice} commands answered twice without oriond recognising the repeat"
        ));
    }
    if torn_total != 0 {
        broken.push(format!("{torn_total} torn frames"));
    }
    if !zombies.is_empty() {
        broken.push(format!("zombies {zombies:?}"));
    }
    if fds_start != fds_end {
        broken.push(format!("oriond descriptors {fds_start:?} -> {fds_end:?}"));
    }
    if !shm_left.is_empty() {
        broken.push(format!("shared memory by name: {shm_left:?}"));
    }
    for victim in ["capture", "detector", "worker", "control"] {
        let n = kills.iter().filter(|k| k.0 == victim).count();
        let r = per_type[victim]["recovered"].as_u64().unwrap_or(0) as usize;
        if r < n {
            broken.push(format!(
                "{victim}: {r} of {n} kills followed by fresh detections"
            ));
        }
    }
    // The recovery times must stand for most kills, not a lucky few.
    let timed: u64 = per_type
        .values()
        .map(|v| v["timed"].as_u64().unwrap_or(0))
        .sum();
    if 2 * timed < kills.len() as u64 {
        broken.push(format!(
            "only {timed} of {} kills timed (the rest overlapped a pause)",
            kills.len()
        ));
    }
    if !broken.is_empty() {
        bail!("soak: {}", broken.join("; "));
    }
    Ok(())
}

//! `system.rooms_per_box`: rooms added one at a time on this box — each its own oriond
//! (the defaults: spare worker and standby detector) on its own RTSP session of the
//! footage, the real model at 2 Hz, one broker for all — until a room misses its rate by
//! more than 5 % or memory runs short. The camera server encodes once for every room
//! (`--shared`): a real camera encodes on its own hardware, so N encoders here would
//! measure the rig, not the rooms.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use orion_tests::mqtt::Mosquitto;
use orion_tests::oriond::Oriond;
use orion_tests::system::{Camera, Spec, config};
use serde_json::{Value, json};

use crate::report;

const RATE_HZ: f64 = 2.0;
/// A room meets its rate if it delivers at least this share of it.
const MEETS: f64 = 0.95;
const WINDOW: Duration = Duration::from_secs(30);

pub fn run(max_rooms: usize, size: char) -> Result<()> {
    let model = match size {
        'n' => "n (YOLOv3-tiny, 640 and 320)",
        'm' => "m (the fall model, 640)",
        other => anyhow::bail!("--rooms-size {other}: the fixtures have n and m"),
    };
    let camera = Camera::start_shared()?;
    let broker = Mosquitto::start_with(false)?;
    let mut rooms: Vec<Oriond> = Vec::new();
    let mut steps = Vec::new();
    let mut fits = 0;
    let mut memory_at_fit = 0.0;
    for n in 1..=max_rooms {
        let spec = Spec {
            rate_hz: RATE_HZ,
            size,
            ..Spec::default()
        };
        let (instance, dir) = Oriond::scratch()?;
        let text = config(&spec, &instance, &dir, &camera.url, broker.port)?;
        let o = Oriond::start_with(instance, dir, &text)?;
        o.wait_all_running(Duration::from_secs(120))?;
        rooms.push(o);
        // Every room with its stand-ins loaded (or shed for memory): steady state.
        for o in &rooms {
            o.wait_for("the stand-ins settled", Duration::from_secs(180), |s| {
                let shed = !s["stand_ins"]["shed"].is_null();
                shed || (s["detector"]["spare_worker_ready"] == true
                    && s["detector_standby"]["current"]["ready"] == true)
            })?;
        }
        let step = measure(&rooms)?;
        let worst = step["worst_rate_hz"].as_f64().unwrap_or(0.0);
        let shed = step["rooms_shed"].as_u64().unwrap_or(0);
        let ok = worst >= RATE_HZ * MEETS && shed == 0;
        eprintln!("rooms_per_box: {n} rooms: {step}");
        if ok {
            fits = n;
            memory_at_fit = step["pss_mb_total"].as_f64().unwrap_or(0.0);
        }
        steps.push(step);
        if !ok {
            break;
        }
    }
    let name = match size {
        'n' => "system.rooms_per_box".to_string(),
        other => format!("system.rooms_per_box.{other}"),
    };
    report::line(
        &name,
        fits as f64,
        "rooms",
        json!({
            "memory_at_n_mb": report::round(memory_at_fit),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "mem_total_mb": mem_total_mb(),
            "rate_hz": RATE_HZ,
            "model": model,
            "stand_ins": "the defaults (spare worker, standby detector)",
            "measured": "each room's results per second over 30 s (oriond's detector.results), PSS of each room's oriond and descendants; a room fits while every room delivers >= 95 % of 2 Hz and none shed its stand-ins",
            "camera": "one rtsp-test-server, one shared encoder, an RTSP session and decoder per room",
            "steps": steps,
        }),
    );
    Ok(())
}

/// Every room's results per second over [`WINDOW`], and the memory.
fn measure(rooms: &[Oriond]) -> Result<Value> {
    let results = |o: &Oriond| -> Result<u64> {
        o.status()?["detector"]["results"]
            .as_u64()
            .context("no detector results")
    };
    let start: Vec<u64> = rooms.iter().map(results).collect::<Result<_>>()?;
    let t = Instant::now();
    std::thread::sleep(WINDOW);
    let mut rates = Vec::new();
    for (o, before) in rooms.iter().zip(start) {
        rates.push((results(o)? - before) as f64 / t.elapsed().as_secs_f64());
    }
    let mut pss = Vec::new();
    let mut shed = 0;
    for o in rooms {
        let status = o.status()?;
        shed += u64::from(!status["stand_ins"]["shed"].is_null());
        let (total, _) = crate::memory::room(o.pid(), &status)?;
        pss.push(total.pss as f64 / 1024.0);
    }
    Ok(json!({
        "rooms": rooms.len(),
        "rates_hz": rates.iter().map(|r| report::round(*r)).collect::<Vec<_>>(),
        "worst_rate_hz": report::round(rates.iter().copied().fold(f64::MAX, f64::min)),
        "pss_mb_per_room": pss.iter().map(|p| report::round(*p)).collect::<Vec<_>>(),
        "pss_mb_total": report::round(pss.iter().sum()),
        "mem_available_mb": mem_available_mb(),
        "load_avg_1m": load_avg(),
        "rooms_shed": shed,
    }))
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb / 1024)
}

fn mem_available_mb() -> Option<u64> {
    meminfo("MemAvailable:")
}

fn mem_total_mb() -> Option<u64> {
    meminfo("MemTotal:")
}

fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

//! What a room costs in memory: the proportional set size (PSS: shared pages split among
//! the processes that share them) of oriond and every descendant, from
//! `/proc/PID/smaps_rollup`, each process named by its role in oriond's status; and the
//! `system.room_pss_mb` lines (with and without the stand-ins).

use std::collections::BTreeMap;

use std::time::Duration;

use anyhow::{Context, Result};
use orion_tests::system::{Spec, System};
use serde_json::{Value, json};

use crate::report;
use crate::stats::median;

/// One process's memory, in kB.
#[derive(Clone, Debug, Default)]
pub struct Pss {
    pub pss: u64,
    pub anon: u64,
    pub file: u64,
    pub rss: u64,
}

impl Pss {
    pub fn of(pid: u32) -> Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
        let mut p = Self::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(key), Some(kb)) = (it.next(), it.next().and_then(|v| v.parse().ok())) else {
                continue;
            };
            match key {
                "Pss:" => p.pss = kb,
                "Pss_Anon:" => p.anon = kb,
                "Pss_File:" => p.file = kb,
                "Rss:" => p.rss = kb,
                _ => {}
            }
        }
        Ok(p)
    }

    fn add(&mut self, o: &Self) {
        self.pss += o.pss;
        self.anon += o.anon;
        self.file += o.file;
        self.rss += o.rss;
    }
}

/// `pid` and every descendant (through `/proc/PID/task/*/children`).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                out.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    out
}

/// Names the processes of a room by their role, from oriond's status.
pub fn roles(oriond: u32, status: &Value) -> BTreeMap<u32, String> {
    let mut roles = BTreeMap::from([(oriond, "oriond".to_string())]);
    let pid = |v: &Value| v.as_u64().map(|p| p as u32);
    if let Some(procs) = status["processes"].as_array() {
        for p in procs {
            if let (Some(pid), Some(name)) = (pid(&p["pid"]), p["name"].as_str()) {
                roles.insert(pid, name.to_string());
            }
        }
    }
    let d = &status["detector"];
    for (key, role) in [
        ("worker_pid", "worker"),
        ("spare_worker_pid", "spare worker"),
    ] {
        if let Some(p) = pid(&d[key]) {
            roles.insert(p, role.into());
        }
    }
    if let Some(p) = pid(&status["detector_standby"]["current"]["pid"]) {
        roles.insert(p, "standby detector".into());
        for w in tree(p).into_iter().skip(1) {
            roles.insert(w, "standby's worker".into());
        }
    }
    roles
}

/// The room's PSS summed, and per role.
pub fn room(oriond: u32, status: &Value) -> Result<(Pss, Value)> {
    let roles = roles(oriond, status);
    let mut total = Pss::default();
    let mut per: BTreeMap<String, Pss> = BTreeMap::new();
    for pid in tree(oriond) {
        // A process may exit between the walk and the read (a worker restarting).
        let Ok(p) = Pss::of(pid) else { continue };
        total.add(&p);
        let role = roles.get(&pid).cloned().unwrap_or_else(|| comm(pid));
        per.entry(role).or_default().add(&p);
    }
    let shares: serde_json::Map<String, Value> = per
        .into_iter()
        .map(|(role, p)| {
            (
                role,
                json!({"pss_mb": mb(p.pss), "anon_mb": mb(p.anon), "file_mb": mb(p.file), "rss_mb": mb(p.rss)}),
            )
        })
        .collect();
    Ok((total, Value::Object(shares)))
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("pid {pid}"))
}

pub fn mb(kb: u64) -> f64 {
    crate::report::round(kb as f64 / 1024.0)
}

/// A room's PSS (oriond and every descendant) with its stand-ins (the defaults) and
/// without them, each alone on the box, the real model at 2 Hz on the footage: sampled
/// once the stand-ins hold the model, the median of the samples.
pub fn room_memory() -> Result<()> {
    let (full, full_shares) = room_pss("")?;
    let (lean, lean_shares) = room_pss("spare_worker = false\nstandby = false\n")?;
    let ratio = full / lean;
    report::line(
        "system.room_pss_mb",
        full,
        "MB",
        json!({
            "per_process": full_shares,
            "lean_mb": report::round(lean),
            "ratio_to_lean": report::round(ratio),
            "measured": "PSS (smaps_rollup) of oriond and every descendant, median of 10 samples 1 s apart, stand-ins loaded, model n at 2 Hz",
            "target": "<= 1.4 x system.room_pss_mb.lean",
            "target_met": ratio <= 1.4,
        }),
    );
    report::line(
        "system.room_pss_mb.lean",
        lean,
        "MB",
        json!({
            "per_process": lean_shares,
            "config": "[detector] spare_worker = false, standby = false",
        }),
    );
    Ok(())
}

fn room_pss(detector: &str) -> Result<(f64, Value)> {
    let sys = System::start(Spec {
        rate_hz: 2.0,
        detector: detector.to_string(),
        ..Spec::default()
    })?;
    let mut op = sys.operator()?;
    op.wait_detections(0, 5, Duration::from_secs(60))?;
    if detector.is_empty() {
        sys.o.wait_standby_ready(Duration::from_secs(90))?;
        sys.o.wait_spare_ready(Duration::from_secs(60))?;
    }
    let mut samples = Vec::new();
    let mut shares = Value::Null;
    for _ in 0..10 {
        op.pull(Duration::from_secs(1));
        let status = sys.o.status()?;
        let (total, per) = room(sys.o.pid(), &status)?;
        samples.push(total.pss as f64 / 1024.0);
        shares = per;
    }
    Ok((median(&samples).context("no samples")?, shares))
}

//! orion-detector with the real Python worker and real ONNX Runtime, on real footage.
//!
//! - correctness: `boxes_match_the_reference_on_real_footage` (square, non-square, crop)
//! - hot swap: `model_swap_under_load_keeps_results_flowing`, `bad_models_are_rejected_and_the_old_one_keeps_working`
//! - resilience: `killed_worker_is_restarted_and_results_resume`,
//!   `a_warm_spare_takes_over_a_killed_worker_and_follows_a_model_change`
//! - commands: `pause_and_resume`, `malformed_commands_get_error_acks`
//!
//! Needs the venv (scripts/setup-python.sh) and fixtures (models/fetch_fixtures.sh).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orion_protocol::DetectionMessage;
use orion_ring::{RingOwner, RingWriter};
use serde_json::Value;

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Share of the boxes with confidence ≥ 0.5 on either side that have a partner with
/// IoU ≥ 0.9 on the other side; and how many such boxes there were.
fn agreement(ours: &[Vec<([f64; 4], f64)>], theirs: &[Vec<([f64; 4], f64)>]) -> (f64, usize) {
    let (mut strong, mut matched) = (0usize, 0usize);
    for (a, b) in ours.iter().zip(theirs) {
        for (side, other) in [(a, b), (b, a)] {
            for (bx, score) in side.iter().filter(|(_, s)| *s >= 0.5) {
                let _ = score;
                strong += 1;
                if other.iter().any(|(ob, _)| iou(*bx, *ob) >= 0.9) {
                    matched += 1;
                }
            }
        }
    }
    (
        if strong == 0 {
            0.0
        } else {
            matched as f64 / strong as f64
        },
        strong,
    )
}

fn reference(
    model: &Path,
    w: u32,
    h: u32,
    frames: &[Vec<u8>],
    crop: Option<[u32; 4]>,
) -> Vec<Vec<([f64; 4], f64)>> {
    let dir = std::env::temp_dir().join(unique("orion-ref"));
    std::fs::create_dir_all(&dir).unwrap();
    let paths: Vec<PathBuf> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = dir.join(format!("{i:03}.rgb"));
            std::fs::write(&p, f).unwrap();
            p
        })
        .collect();
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("models/reference_detect.py"))
        .arg(model)
        .args([w.to_string(), h.to_string()])
        .args(&paths);
    if let Some(c) = crop {
        cmd.arg("--crop").args(c.map(|v| v.to_string()));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["boxes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let f = |k: &str| b[k].as_f64().unwrap();
                    ([f("x1"), f("y1"), f("x2"), f("y2")], f("score"))
                })
                .collect()
        })
        .collect()
}

fn bridge_boxes(d: &DetectionMessage) -> Vec<([f64; 4], f64)> {
    d.data
        .detections
        .iter()
        .map(|x| {
            let b = x.bbox;
            (
                [
                    f64::from(b.x),
                    f64::from(b.y),
                    f64::from(b.x + b.width),
                    f64::from(b.y + b.height),
                ],
                f64::from(x.confidence),
            )
        })
        .collect()
}

/// One comparison: frame size, optional crop (pixels, and the ROI command that makes it),
/// and the model file the reference runs.
struct Case {
    width: u32,
    height: u32,
    crop: Option<([u32; 4], &'static str)>,
    reference_model: &'static str,
}

#[test]
fn boxes_match_the_reference_on_real_footage() {
    let models = fixture("models/real");
    // (width, height, crop in pixels with its normalized ROI, model the reference runs)
    let cases = [
        Case {
            width: 640,
            height: 360,
            crop: None,
            reference_model: "yolo11n_yolov3-tiny_640.onnx",
        },
        Case {
            width: 416,
            height: 416,
            crop: None,
            reference_model: "yolo11n_yolov3-tiny_640.onnx",
        },
        Case {
            width: 640,
            height: 360,
            crop: Some((
                [288, 72, 256, 216],
                r#"{"x":0.45,"y":0.2,"width":0.4,"height":0.6}"#,
            )),
            reference_model: "yolo11n_yolov3-tiny_320.onnx",
        },
    ];
    for Case {
        width: w,
        height: h,
        crop,
        reference_model: ref_model,
    } in cases
    {
        let frames = footage(w, h, "1/4");
        let ring = ring(w, h);
        let mut writer = RingWriter::attach(ring.source().clone()).unwrap();
        // Every frame of the crop case is cropped: no forced whole-frame looks here (they
        // have their own tests); the pixels of the crop path are what is compared.
        let mut det = Detector::start(&ring, &models, "n", &["--no-full-look"]);
        if let Some((_, roi)) = crop {
            let ack = det.command(&format!(
                r#"{{"command":"set_attention_rois","params":{{"rois":[{roi}]}}}}"#
            ));
            assert_eq!(ack["status"], "success", "{ack}");
        }
        let mut ours = Vec::new();
        for f in &frames {
            let seq = write(&mut writer, w, h, f);
            let d = det.detection(Duration::from_secs(30), |d| d.frame_seq == seq);
            assert_eq!(
                (d.data.metadata.frame_width, d.data.metadata.frame_height),
                (w, h)
            );
            assert_eq!(
                d.data.metadata.imgsz,
                if crop.is_some() { 320 } else { 640 }
            );
            assert_eq!(d.instance_id, det.instance);
            ours.push(bridge_boxes(&d));
        }
        let theirs = reference(&models.join(ref_model), w, h, &frames, crop.map(|c| c.0));
        let (share, strong) = agreement(&ours, &theirs);
        eprintln!(
            "{w}x{h} crop={:?}: {strong} strong boxes, {:.1}% matched",
            crop.map(|c| c.0),
            share * 100.0
        );
        assert!(strong >= 8, "too few confident boxes to judge: {strong}");
        assert!(
            share >= 0.98,
            "only {:.1}% of {strong} boxes agree with the reference",
            share * 100.0
        );
    }
}

/// Writes synthetic frames at `hz` until stopped; returns the stop flag.
fn feed(
    ring: &RingOwner,
    w: u32,
    h: u32,
    hz: f64,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = ring.source().clone();
    let handle = std::thread::spawn(move || {
        let mut writer = RingWriter::attach(name).unwrap();
        let mut frame = vec![0u8; (w * h * 3) as usize];
        let mut i = 0u8;
        while !flag.load(Ordering::Relaxed) {
            frame
                .iter_mut()
                .enumerate()
                .for_each(|(k, p)| *p = (k as u8).wrapping_mul(i));
            write(&mut writer, w, h, &frame);
            i = i.wrapping_add(1);
            std::thread::sleep(Duration::from_secs_f64(1.0 / hz));
        }
    });
    (stop, handle)
}

#[test]
fn model_swap_under_load_keeps_results_flowing() {
    let ring = ring(640, 480);
    let mut det = Detector::start(&ring, &fixture("models/synthetic"), "n", &[]);
    let pid = det.status()["worker_pid"].as_u64().unwrap();
    let (stop, feeder) = feed(&ring, 640, 480, 20.0);
    let times = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let first_seq = ring.writer_info().latest_seq;
    let start = Instant::now();
    let mut acked = None;
    let mut sent = false;
    while start.elapsed() < Duration::from_secs(6) {
        if !sent && start.elapsed() > Duration::from_secs(2) {
            det.child
                .send_line(
                    r#"{"command":"set_model_size","params":{"size":"x"},"request_id":"swap-1"}"#,
                )
                .unwrap();
            sent = true;
        }
        if let Some(line) = det
            .child
            .next_line_within(Duration::from_millis(50))
            .unwrap()
        {
            if let Some(d) = detection(&line) {
                times
                    .lock()
                    .unwrap()
                    .push((Instant::now(), d.data.metadata.model_size.to_string()));
            } else if let Some(v) = parse(&line).filter(|v| v["type"] == "ack") {
                acked = Some(v);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    let written = ring.writer_info().latest_seq - first_seq;
    let ack = acked.expect("set_model_size was acknowledged");
    assert_eq!(
        (ack["status"].as_str(), ack["request_id"].as_str()),
        (Some("success"), Some("swap-1")),
        "{ack}"
    );
    let times = times.lock().unwrap();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64())
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let worst = sorted[sorted.len() - 1];
    eprintln!(
        "{} results for {written} frames, median gap {:.1} ms, worst {:.1} ms",
        times.len(),
        median * 1e3,
        worst * 1e3
    );
    // Every frame got a result (the worker is far from busy at 20 Hz), and nothing like a
    // pause or a worker restart (≥ 500 ms) happened. The 1.5× target itself is measured by
    // `orion-bench detector` (detector.swap_gap) on an otherwise idle machine; here other
    // tests share the two cores, hence the generous bound.
    assert!(
        times.len() as f64 >= 0.9 * written as f64,
        "{} results for {written} frames",
        times.len()
    );
    assert!(worst <= 4.0 * median, "gap {worst} s vs median {median} s");
    assert_eq!(times.first().unwrap().1, "n");
    assert_eq!(times.last().unwrap().1, "x");
    assert_eq!(
        det.status()["worker_pid"].as_u64().unwrap(),
        pid,
        "the worker was not restarted"
    );
}

#[test]
fn bad_models_are_rejected_and_the_old_one_keeps_working() {
    let dir = std::env::temp_dir().join(unique("orion-badmodels"));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["yolo11n_synthetic_640.onnx", "yolo11n_synthetic_320.onnx"] {
        std::fs::copy(fixture("models/synthetic").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("yolo11m.onnx"), b"\x08\x01garbage, not a model").unwrap();
    // Right file format, wrong layout: a 320 model where a 640 one belongs.
    std::fs::copy(
        fixture("models/synthetic/yolo11s_synthetic_320.onnx"),
        dir.join("yolo11s.onnx"),
    )
    .unwrap();
    let ring = ring(320, 240);
    let mut det = Detector::start(&ring, &dir, "n", &[]);
    let (stop, feeder) = feed(&ring, 320, 240, 10.0);
    for (size, expected) in [
        ("m", "not a loadable ONNX model"),
        ("s", "is not [1, 3, 640, 640]"),
        ("l", "no 640 model for size l"),
    ] {
        let ack = det.command(&format!(
            r#"{{"command":"set_model_size","params":{{"size":"{size}"}}}}"#
        ));
        assert_eq!(ack["status"], "error", "{ack}");
        assert!(ack["error"].as_str().unwrap().contains(expected), "{ack}");
    }
    let d = det.detection(Duration::from_secs(10), |_| true);
    assert_eq!(
        d.data.metadata.model_size.to_string(),
        "n",
        "still the old model"
    );
    assert_eq!(det.status()["model"], "n");
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn killed_worker_is_restarted_and_results_resume() {
    let ring = ring(320, 240);
    let mut det = Detector::start(&ring, &fixture("models/synthetic"), "n", &[]);
    let (stop, feeder) = feed(&ring, 320, 240, 10.0);
    det.detection(Duration::from_secs(10), |_| true);
    let pid = det.status()["worker_pid"].as_u64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let restarted = det
        .child
        .wait_for(Duration::from_secs(30), |l| {
            status(l).filter(|s| {
                s["worker_pid"].as_u64().is_some_and(|p| p != pid) && s["state"] == "running"
            })
        })
        .unwrap();
    det.detection(Duration::from_secs(30), |_| true);
    eprintln!(
        "worker {pid} killed; results again after {:?}",
        killed.elapsed()
    );
    assert!(restarted["worker_restarts"].as_u64().unwrap() >= 1);
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
}

/// With `--spare-worker` a second worker loads the model and idles; a killed worker is
/// replaced by it at once (its pid becomes the worker's, no model load), results resume,
/// and a new spare is made. A model change replaces the spare with one of the new model.
#[test]
fn a_warm_spare_takes_over_a_killed_worker_and_follows_a_model_change() {
    let ring = ring(320, 240);
    let mut det = Detector::start(
        &ring,
        &fixture("models/synthetic"),
        "n",
        &["--spare-worker"],
    );
    let (stop, feeder) = feed(&ring, 320, 240, 10.0);
    det.detection(Duration::from_secs(10), |_| true);
    let ready = det
        .child
        .wait_for(Duration::from_secs(60), |l| {
            status(l).filter(|s| s["spare_worker_ready"] == true)
        })
        .unwrap();
    let worker = ready["worker_pid"].as_u64().unwrap();
    let spare = ready["spare_worker_pid"].as_u64().unwrap();
    assert_ne!(worker, spare);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let took = det
        .child
        .wait_for(Duration::from_secs(30), |l| {
            status(l).filter(|s| s["worker_pid"].as_u64() == Some(spare))
        })
        .unwrap();
    assert_eq!(took["state"], "running", "{took}");
    assert_eq!(took["spare_takeovers"], 1, "{took}");
    det.detection(Duration::from_secs(10), |_| true);
    eprintln!(
        "worker {worker} killed; spare {spare} took over, results after {:?}",
        killed.elapsed()
    );
    // A new spare follows.
    let again = det
        .child
        .wait_for(Duration::from_secs(60), |l| {
            status(l).filter(|s| {
                s["spare_worker_ready"] == true
                    && s["spare_worker_pid"].as_u64().is_some_and(|p| p != spare)
            })
        })
        .unwrap();
    let second = again["spare_worker_pid"].as_u64().unwrap();
    // A model change: the spare loads it and becomes the worker (the worker serving frames
    // never loads); the old worker goes, and a spare of the new model follows.
    let ack = det.command(r#"{"command":"set_model_size","params":{"size":"s"}}"#);
    assert_eq!(ack["status"], "success", "{ack}");
    assert_eq!(ack["data"]["loaded_by"], "spare", "{ack}");
    let after = det
        .child
        .wait_for(Duration::from_secs(60), |l| {
            status(l).filter(|s| {
                s["model"] == "s"
                    && s["worker_pid"].as_u64() == Some(second)
                    && s["spare_worker_ready"] == true
                    && s["spare_worker_pid"].as_u64().is_some_and(|p| p != second)
            })
        })
        .unwrap();
    assert!(!process_exists(spare), "the old worker is gone");
    det.detection(Duration::from_secs(10), |d| {
        d.data.metadata.model_size == orion_protocol::ModelSize::S
    });
    eprintln!("spare after the model change: {after}");
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
}

fn process_exists(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn pause_and_resume() {
    let ring = ring(320, 240);
    let mut det = Detector::start(&ring, &fixture("models/synthetic"), "n", &[]);
    let (stop, feeder) = feed(&ring, 320, 240, 20.0);
    det.detection(Duration::from_secs(10), |_| true);
    assert_eq!(
        det.command(r#"{"command":"pause_inference"}"#)["status"],
        "success"
    );
    // Results already in flight may still arrive; after that, silence.
    std::thread::sleep(Duration::from_millis(300));
    let mut during = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if det
            .child
            .next_line_within(Duration::from_millis(50))
            .unwrap()
            .is_some_and(|l| detection(&l).is_some())
        {
            during += 1;
        }
    }
    assert_eq!(during, 0, "no results while paused");
    assert_eq!(
        det.command(r#"{"command":"resume_inference"}"#)["status"],
        "success"
    );
    det.detection(Duration::from_secs(10), |_| true);
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
}

#[test]
fn malformed_commands_get_error_acks() {
    let ring = ring(320, 240);
    let mut det = Detector::start(&ring, &fixture("models/synthetic"), "n", &[]);
    for bad in [
        "{not json",
        r#"{"command":"warp_drive"}"#,
        r#"{"command":"set_model_size","params":{"size":"xxl"}}"#,
        r#"{"command":"set_attention_rois","params":{"rois":[{"x":0.9,"y":0,"width":0.5,"height":1}]}}"#,
        r#"{"command":"set_attention_rois","params":{"rois":[{"x":"NaN","y":0,"width":0.5,"height":1}]}}"#,
    ] {
        let ack = det.command(bad);
        assert_eq!(ack["status"], "error", "{bad}: {ack}");
        assert!(!ack["error"].as_str().unwrap().is_empty());
    }
    let huge = format!(
        r#"{{"command":"get_status","pad":"{}"}}"#,
        "x".repeat(100_000)
    );
    assert!(
        det.command(&huge)["error"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
    assert_eq!(
        det.command(r#"{"command":"get_status"}"#)["status"],
        "success"
    );
    assert!(det.child.is_running());
}

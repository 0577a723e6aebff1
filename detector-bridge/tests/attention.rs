//! Attention ROIs and auto-focus end to end: the real bridge, worker and COCO model on the
//! real footage.
//!
//! - `roi_crop_on_320_finds_at_least_as_many_as_full_frame_640`: a distant group seen through
//!   an attention ROI by the 320 model, against the whole frame on the 640 model.
//! - `auto_focus_follows_people_and_reports_its_roi`: auto-focus picks its ROI from the
//!   people it finds; the detection message says so.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use orion_protocol::{DetectionMessage, RoiSource};
use orion_ring::RingWriter;

/// The distant group: people walking by the tram, far from the camera (normalized).
const ROI: (f64, f64, f64, f64) = (0.25, 0.28, 0.45, 0.32);

fn persons_inside(d: &DetectionMessage, roi: (f64, f64, f64, f64), w: f64, h: f64) -> usize {
    d.data
        .detections
        .iter()
        .filter(|x| {
            let (cx, cy) = (
                (f64::from(x.bbox.x) + f64::from(x.bbox.width) / 2.0) / w,
                (f64::from(x.bbox.y) + f64::from(x.bbox.height) / 2.0) / h,
            );
            cx >= roi.0 && cx <= roi.0 + roi.2 && cy >= roi.1 && cy <= roi.1 + roi.3
        })
        .count()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn roi_crop_on_320_finds_at_least_as_many_as_full_frame_640() {
    let (w, h) = (640u32, 360u32);
    let frames = footage(w, h, "1/2");
    let ring = ring(w, h);
    let mut writer = RingWriter::attach(ring.source().clone()).unwrap();
    // Every frame on the ROI: no forced whole-frame looks (issue 25; tested in
    // `bridge::attention` and tests/tests/room.rs) in a comparison of crops.
    let mut det = Detector::start(&ring, &fixture("models/real"), "n", &["--no-full-look"]);
    let (full, full_ms) = {
        let (mut found, mut ms) = (0usize, Vec::new());
        for f in &frames {
            let seq = write(&mut writer, w, h, f);
            let d = det.detection(Duration::from_secs(30), |d| d.frame_seq == seq);
            found += persons_inside(&d, ROI, f64::from(w), f64::from(h));
            ms.push(d.timing.inference_ms);
            assert_eq!(
                (d.data.metadata.imgsz, d.data.metadata.roi_source),
                (640, RoiSource::Full)
            );
        }
        (found, median(ms))
    };
    let roi = format!(
        r#"{{"x":{},"y":{},"width":{},"height":{}}}"#,
        ROI.0, ROI.1, ROI.2, ROI.3
    );
    let ack = det.command(&format!(
        r#"{{"command":"set_attention_rois","params":{{"rois":[{roi}]}}}}"#
    ));
    assert_eq!(ack["status"], "success", "{ack}");
    let (mut crop, mut crop_ms) = (0usize, Vec::new());
    for f in &frames {
        let seq = write(&mut writer, w, h, f);
        let d = det.detection(Duration::from_secs(30), |d| d.frame_seq == seq);
        assert_eq!(
            (d.data.metadata.imgsz, d.data.metadata.roi_source),
            (320, RoiSource::External)
        );
        assert!((d.data.metadata.region.x() - ROI.0).abs() < 1e-9);
        crop += persons_inside(&d, ROI, f64::from(w), f64::from(h));
        crop_ms.push(d.timing.inference_ms);
    }
    let crop_ms = median(crop_ms);
    eprintln!(
        "people inside the ROI over {} frames: full frame 640 found {full} ({full_ms:.1} ms median inference), ROI crop 320 found {crop} ({crop_ms:.1} ms)",
        frames.len()
    );
    assert!(full > 0, "the ROI should hold people");
    assert!(crop >= full, "crop 320 found {crop}, full 640 found {full}");
    assert!(crop_ms < full_ms, "crop {crop_ms} ms vs full {full_ms} ms");
}

#[test]
fn auto_focus_follows_people_and_reports_its_roi() {
    let (w, h) = (640u32, 360u32);
    // Consecutive frames half a second apart: people move a little between them.
    let frames = footage(w, h, "2/1");
    let ring = ring(w, h);
    let mut writer = RingWriter::attach(ring.source().clone()).unwrap();
    // The mechanics of following people; without the whole-frame fallback, which on this
    // busy street gives way to the whole frame most of the time (`detector.partial_view`).
    let mut det = Detector::start(
        &ring,
        &fixture("models/real"),
        "n",
        &[
            "--auto-focus",
            "--auto-focus-strategy",
            "velocity",
            "--no-full-look",
        ],
    );
    let (mut found, mut ms, mut focused) = (0usize, Vec::new(), 0usize);
    for f in frames.iter().take(40) {
        let seq = write(&mut writer, w, h, f);
        let d = det.detection(Duration::from_secs(30), |d| d.frame_seq == seq);
        found += d.data.count;
        ms.push(d.timing.inference_ms);
        if d.data.metadata.roi_source == RoiSource::AutoFocus {
            focused += 1;
            let r = d.data.metadata.region;
            assert!(
                r.x() >= 0.0
                    && r.y() >= 0.0
                    && r.x() + r.width() <= 1.0 + 1e-9
                    && r.y() + r.height() <= 1.0 + 1e-9
            );
        }
        if d.data.count > 0 {
            assert!(
                d.suggested_roi.is_some(),
                "auto-focus suggests where to look"
            );
        }
    }
    let stats = det.command(r#"{"command":"get_auto_focus_stats"}"#);
    eprintln!(
        "auto-focus over 40 frames: {found} people found, {focused} frames on the auto-focus ROI, {:.1} ms median inference; stats {}",
        median(ms),
        stats["data"]
    );
    assert_eq!(stats["status"], "success");
    assert!(
        focused >= 20,
        "auto-focus ROI used on {focused} of 40 frames"
    );
    assert_eq!(
        stats["data"]["frames_with_auto_focus"].as_u64().unwrap() as usize,
        focused
    );
    assert!(found > 0);
    // Changing the strategy at runtime loses no frame and keeps the history.
    let ack = det.command(
        r#"{"command":"set_auto_focus_strategy","params":{"strategy":"simple","alpha":0.5}}"#,
    );
    assert_eq!(ack["status"], "success", "{ack}");
    let bad = det.command(
        r#"{"command":"set_auto_focus_strategy","params":{"strategy":"simple","alpha":1.5}}"#,
    );
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("alpha must be in (0, 1]"),
        "{bad}"
    );
    assert_eq!(
        det.command(r#"{"command":"get_auto_focus_strategy"}"#)["data"]["params"]["alpha"],
        0.5
    );
    let seq = write(&mut writer, w, h, &frames[0]);
    det.detection(Duration::from_secs(30), |d| d.frame_seq == seq);
}

//! Helpers shared by the detector's integration tests: fixtures, the venv's Python, decoded
//! footage, a ring, and a running `orion-detector` with its JSON-lines interface.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use orion_protocol::DetectionMessage;
use orion_ring::{
    CaptureTime, FrameGeometry, PixelFormat, RingGeometry, RingName, RingOwner, RingWriter,
};
use orion_tests::child::ChildGuard;
use orion_tests::fixtures;
use serde_json::Value;

pub fn repo() -> PathBuf {
    fixtures::repo()
}

pub fn python() -> PathBuf {
    fixtures::python().unwrap()
}

pub fn fixture(rel: &str) -> PathBuf {
    fixtures::fixture(rel).unwrap()
}

pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn footage(w: u32, h: u32, rate: &str) -> Vec<Vec<u8>> {
    let frames = fixtures::footage(w, h, rate).unwrap();
    assert!(frames.len() >= 10, "{} frames", frames.len());
    frames
}

pub struct Detector {
    pub child: ChildGuard,
    pub instance: String,
}

impl Detector {
    pub fn start(ring: &RingOwner, model_dir: &Path, size: &str, extra: &[&str]) -> Self {
        let instance = unique("det").replace('_', "-");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orion-detector"));
        cmd.args([
            "--ring",
            &ring.source().to_string(),
            "--instance-id",
            &instance,
            "--room-id",
            "test-room",
            "--size",
            size,
        ]);
        cmd.arg("--model-dir")
            .arg(model_dir)
            .arg("--python")
            .arg(python())
            .arg("--worker-dir")
            .arg(repo().join("python"));
        cmd.args(["--status-interval-ms", "200", "--threads", "2"])
            .args(extra);
        let mut child = ChildGuard::spawn(cmd).unwrap();
        child
            .wait_for(Duration::from_secs(60), |l| {
                status(l).filter(|s| s["state"] == "running")
            })
            .unwrap();
        Self { child, instance }
    }

    pub fn command(&mut self, json: &str) -> Value {
        self.child.send_line(json).unwrap();
        self.child
            .wait_for(Duration::from_secs(60), |l| {
                parse(l).filter(|v| v["type"] == "ack")
            })
            .unwrap()
    }

    pub fn status(&mut self) -> Value {
        self.child
            .wait_for(Duration::from_secs(10), status)
            .unwrap()
    }

    pub fn detection(
        &mut self,
        within: Duration,
        want: impl Fn(&DetectionMessage) -> bool,
    ) -> DetectionMessage {
        self.child
            .wait_for(within, |l| detection(l).filter(|d| want(d)))
            .unwrap()
    }
}

pub fn parse(line: &str) -> Option<Value> {
    serde_json::from_str(line).ok()
}

pub fn status(line: &str) -> Option<Value> {
    parse(line).filter(|v| v["type"] == "detector_status")
}

pub fn detection(line: &str) -> Option<DetectionMessage> {
    let v = parse(line).filter(|v| v["type"] == "detection")?;
    serde_json::from_value(v["detection"].clone()).ok()
}

pub fn ring(w: u32, h: u32) -> RingOwner {
    let name = RingName::new(&format!("/orion-{}", unique("dtest"))).unwrap();
    RingOwner::create(
        name,
        RingGeometry::for_frames(4, w, h, PixelFormat::Rgb8).unwrap(),
    )
    .unwrap()
}

pub fn write(writer: &mut RingWriter, w: u32, h: u32, rgb: &[u8]) -> u64 {
    let g = FrameGeometry::new(w, h, w * 3, PixelFormat::Rgb8).unwrap();
    writer.write(g, CaptureTime::now(), rgb).unwrap()
}

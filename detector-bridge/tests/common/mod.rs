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
use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn python() -> PathBuf {
    let venv = std::env::var_os("ORION_VENV").map_or_else(|| repo().join(".venv"), PathBuf::from);
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "{} missing: run scripts/setup-python.sh",
        py.display()
    );
    py
}

pub fn fixture(rel: &str) -> PathBuf {
    let p = repo().join("fixtures").join(rel);
    assert!(
        p.exists(),
        "{} missing: run models/fetch_fixtures.sh",
        p.display()
    );
    p
}

pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Decodes the sample footage at `rate` frames per second (a caps fraction such as "1/4")
/// into `w`×`h` RGB frames.
pub fn footage(w: u32, h: u32, rate: &str) -> Vec<Vec<u8>> {
    let dir = std::env::temp_dir().join(unique("orion-footage"));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!(
            "location={}",
            fixture("footage/sample.mp4").display()
        ))
        .args([
            "!",
            "decodebin",
            "!",
            "videorate",
            "!",
            &format!("video/x-raw,framerate={rate}"),
            "!",
            "videoconvert",
            "!",
            "videoscale",
        ])
        .args([
            "!",
            &format!("video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1"),
            "!",
            "multifilesink",
        ])
        .arg(format!("location={}/f%03d.rgb", dir.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let frames = files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect::<Vec<_>>();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(frames.len() >= 10 && frames.iter().all(|f| f.len() == (w * h * 3) as usize));
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
            ring.name().as_str(),
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

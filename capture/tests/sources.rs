//! Every kind of camera the config accepts, on a real stream from the `rtsp-test-server`
//! helper (GStreamer's RTSP server library), decoded for real, inside the capture's own
//! sandbox: H.265, RTP over UDP, `rtsps://` with a self-signed certificate (trusted through
//! `--tls-ca`, refused without it), and a clear error for a codec the box cannot decode.
//! (H.264 over TCP, files and the test pattern are in `stream.rs`; a v4l2 camera needs a
//! device, which build machines have none of.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use orion_protocol::{CaptureStatus, StreamState};
use orion_ring::{PixelFormat, Read, RingGeometry, RingName, RingOwner, RingReader};
use orion_tests::child::ChildGuard;

fn ring(tag: &str) -> RingOwner {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = RingName::new(&format!("/orion-src-{}-{tag}-{n}", std::process::id())).unwrap();
    RingOwner::create(
        name,
        RingGeometry::for_frames(4, 320, 240, PixelFormat::Rgb8).unwrap(),
    )
    .unwrap()
}

/// The test server at 320×240, 15 fps, plus `args`.
fn rtsp_server(args: &[&str]) -> (ChildGuard, String) {
    let mut all = vec!["--width", "320", "--height", "240", "--fps", "15"];
    all.extend_from_slice(args);
    orion_tests::rtsp_server::spawn(&all).unwrap()
}

/// orion-capture at 320×240, 5 Hz, with its sandbox, plus `extra` arguments and `env`.
fn capture(ring: &RingOwner, source: &str, extra: &[&str], env: &[(&str, &str)]) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orion-capture"));
    cmd.args(["--ring", &ring.source().to_string(), "--source", source]);
    cmd.args(["--width", "320", "--height", "240", "--rate-hz", "5"]);
    cmd.args(["--status-interval-ms", "200"]);
    cmd.args(extra);
    cmd.envs(env.iter().copied());
    ChildGuard::spawn(cmd).unwrap()
}

fn status(line: &str) -> Option<CaptureStatus> {
    line.contains("\"capture_status\"")
        .then(|| serde_json::from_str(line).ok())
        .flatten()
}

/// Waits until the capture runs with frames in the ring; checks one frame's geometry and
/// that the sandbox is on.
fn frames_arrive(cap: &mut ChildGuard, ring: &RingOwner) {
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let running = cap
        .wait_for(Duration::from_secs(20), |line| {
            status(line).filter(|s| s.state == StreamState::Running && s.frames >= 3)
        })
        .unwrap();
    assert!(
        running
            .sandbox
            .as_deref()
            .unwrap_or("")
            .contains("seccomp on"),
        "{:?}",
        running.sandbox
    );
    let seq = reader.latest_seq();
    reader
        .wait_for_newer(seq, Duration::from_secs(5))
        .expect("a new frame");
    let Read::Frame(meta) = reader.read_latest_meta().unwrap() else {
        panic!("no frame to read");
    };
    assert_eq!((meta.geometry.width(), meta.geometry.height()), (320, 240));
}

#[test]
fn an_h265_camera_is_decoded() {
    let (_server, url) = rtsp_server(&["--codec", "h265"]);
    let ring = ring("h265");
    let mut cap = capture(&ring, &url, &[], &[]);
    frames_arrive(&mut cap, &ring);
}

#[test]
fn rtp_over_udp_delivers_frames() {
    let (_server, url) = rtsp_server(&[]);
    let ring = ring("udp");
    let mut cap = capture(&ring, &url, &["--rtsp-transport", "udp"], &[]);
    frames_arrive(&mut cap, &ring);
}

/// A self-signed certificate for 127.0.0.1 (openssl, as an installer would make one).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("camera.pem"), dir.join("camera.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn rtsps_with_a_self_signed_certificate_is_trusted_only_through_tls_ca() {
    let dir = std::env::temp_dir().join(format!("orion-rtsps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed(&dir);
    let (_server, url) = rtsp_server(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(url.starts_with("rtsps://"), "{url}");

    // Without the camera's certificate the TLS handshake fails: never running.
    let untrusted = ring("rtsps-untrusted");
    let mut cap = capture(&untrusted, &url, &[], &[]);
    let refused = cap
        .wait_for(Duration::from_secs(20), |line| {
            status(line).filter(|s| s.reconnects >= 1 && s.last_error.is_some())
        })
        .unwrap();
    eprintln!("untrusted rtsps: {:?}", refused.last_error);
    assert_eq!(refused.frames, 0, "{refused:?}");
    let why = refused.last_error.unwrap_or_default();
    assert!(
        why.contains("camera.tls_ca"),
        "the status names the fix: {why}"
    );
    drop(cap);

    let trusted = ring("rtsps");
    let mut cap = capture(&trusted, &url, &["--tls-ca", cert.to_str().unwrap()], &[]);
    frames_arrive(&mut cap, &trusted);
    drop(cap);

    // A CA file that holds no certificate is refused at start, with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_orion-capture"))
        .args(["--ring", &trusted.source().to_string(), "--source", &url])
        .arg("--tls-ca")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls_ca") && err.contains("no PEM certificate"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_codec_the_box_cannot_decode_is_a_clear_error() {
    let (_server, url) = rtsp_server(&["--codec", "h265"]);
    let ring = ring("nodecoder");
    // A box without an H.265 decoder: GStreamer's own switch to leave its decoders out
    // of autoplugging.
    let no_h265 = [(
        "GST_PLUGIN_FEATURE_RANK",
        "avdec_h265:NONE,libde265dec:NONE",
    )];
    let mut cap = capture(&ring, &url, &[], &no_h265);
    let failed = cap
        .wait_for(Duration::from_secs(20), |line| {
            status(line).filter(|s| s.last_error.is_some())
        })
        .unwrap();
    let error = failed.last_error.unwrap();
    eprintln!("no decoder: {error}");
    assert!(
        error.contains("cannot decode")
            && error.contains("H.265")
            && error.contains("video/x-h265"),
        "{error}"
    );
    assert_eq!(failed.frames, 0);
    assert!(
        cap.is_running(),
        "it keeps retrying, as for any camera fault"
    );
}

//! orion-capture against a real RTSP server (GStreamer's RTSP server library in the
//! `rtsp-test-server` helper), real decoding, the real ring.
//!
//! - rate and size: `frames_arrive_at_the_requested_size_and_rate`, `half_hertz_means_one_frame_every_two_seconds`,
//!   `one_and_a_half_hertz_is_exact`
//! - outages: `server_outage_is_survived_without_a_restart`, `silent_source_backs_off_and_stays_up`
//! - errors: `refused_connection_is_reported_without_leaking_credentials`, `bad_arguments_exit_2_with_a_clear_error`,
//!   `missing_ring_is_a_clear_error`
//! - layout: `odd_width_frames_have_padded_stride_and_intact_rows`
//! - files: `file_source_loops_forever`

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use orion_protocol::{CaptureStatus, StreamState};
use orion_ring::{FrameMeta, PixelFormat, Read, RingGeometry, RingName, RingOwner, RingReader};
use orion_tests::child::ChildGuard;

fn ring(tag: &str, width: u32, height: u32) -> RingOwner {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = RingName::new(&format!("/orion-cap-{}-{tag}-{n}", std::process::id())).unwrap();
    RingOwner::create(
        name,
        RingGeometry::for_frames(4, width, height, PixelFormat::Rgb8).unwrap(),
    )
    .unwrap()
}

/// A port nobody listens on right now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the RTSP server; returns it and the stream URL once it listens.
fn rtsp_server(args: &[&str]) -> (ChildGuard, String) {
    orion_tests::rtsp_server::spawn(args).unwrap()
}

fn capture(
    ring: &RingOwner,
    source: &str,
    w: u32,
    h: u32,
    rate: f64,
    extra: &[&str],
) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orion-capture"));
    cmd.args(["--ring", &ring.source().to_string(), "--source", source]);
    cmd.args([
        "--width",
        &w.to_string(),
        "--height",
        &h.to_string(),
        "--rate-hz",
        &rate.to_string(),
    ]);
    cmd.args(["--status-interval-ms", "200"]);
    cmd.args(extra);
    ChildGuard::spawn(cmd).unwrap()
}

fn parse_status(line: &str) -> Option<CaptureStatus> {
    line.contains("\"capture_status\"")
        .then(|| serde_json::from_str(line).ok())
        .flatten()
}

/// Waits for a status line satisfying `want`.
fn wait_status(
    child: &mut ChildGuard,
    within: Duration,
    want: impl Fn(&CaptureStatus) -> bool,
) -> CaptureStatus {
    child
        .wait_for(within, |line| parse_status(line).filter(|s| want(s)))
        .unwrap()
}

/// Every frame published during `span` (seq-complete: the metadata of the newest frame at
/// each wake-up, plus its sequence number, which counts frames even if some were skipped).
fn frames_for(reader: &mut RingReader, span: Duration) -> Vec<FrameMeta> {
    let mut frames = Vec::new();
    let mut last = reader.latest_seq();
    let until = Instant::now() + span;
    while Instant::now() < until {
        if reader
            .wait_for_newer(last, until.saturating_duration_since(Instant::now()))
            .is_none()
        {
            break;
        }
        if let Read::Frame(meta) = reader.read_latest_meta().unwrap() {
            last = meta.seq;
            frames.push(meta);
        }
    }
    frames
}

/// Frames per second between the first and last frame, counted by sequence number.
fn measured_rate(frames: &[FrameMeta]) -> f64 {
    let (first, last) = (frames.first().unwrap(), frames.last().unwrap());
    (last.seq - first.seq) as f64 / ((last.monotonic_ns - first.monotonic_ns) as f64 / 1e9)
}

#[test]
fn frames_arrive_at_the_requested_size_and_rate() {
    let (_server, url) = rtsp_server(&["--width", "640", "--height", "480", "--fps", "30"]);
    let ring = ring("rate", 640, 480);
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let mut cap = capture(&ring, &url, 640, 480, 15.0, &[]);
    wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running
    });

    let frames = frames_for(&mut reader, Duration::from_secs(10));
    let rate = measured_rate(&frames);
    eprintln!(
        "15 Hz requested: {} frames read, {rate:.3} Hz measured",
        frames.len()
    );
    assert!(
        (13.5..=16.5).contains(&rate),
        "rate {rate} not within 10% of 15"
    );
    for f in &frames {
        assert_eq!(
            (f.geometry.width(), f.geometry.height(), f.geometry.stride()),
            (640, 480, 1920)
        );
        assert_eq!(f.geometry.format(), PixelFormat::Rgb8);
    }
    let status = wait_status(&mut cap, Duration::from_secs(5), |s| s.frames > 100);
    assert!(
        (12.0..=18.0).contains(&status.fps),
        "status fps {}",
        status.fps
    );
    assert_eq!(status.reconnects, 0);
}

#[test]
fn half_hertz_means_one_frame_every_two_seconds() {
    let (_server, url) = rtsp_server(&["--width", "320", "--height", "240", "--fps", "30"]);
    let ring = ring("half", 320, 240);
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let mut cap = capture(&ring, &url, 320, 240, 0.5, &[]);
    wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running
    });

    let frames = frames_for(&mut reader, Duration::from_millis(8500));
    let gaps: Vec<f64> = frames
        .windows(2)
        .map(|w| (w[1].monotonic_ns - w[0].monotonic_ns) as f64 / 1e9)
        .collect();
    eprintln!("0.5 Hz requested: gaps {gaps:?}");
    assert!(gaps.len() >= 3, "too few frames: {gaps:?}");
    for (w, gap) in frames.windows(2).zip(&gaps) {
        assert_eq!(w[1].seq, w[0].seq + 1, "the reader saw every frame");
        assert!((1.8..=2.2).contains(gap), "gap {gap} s, expected 2 s ±10%");
    }
}

#[test]
fn one_and_a_half_hertz_is_exact() {
    let (_server, url) = rtsp_server(&["--width", "320", "--height", "240", "--fps", "30"]);
    let ring = ring("threehalves", 320, 240);
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let mut cap = capture(&ring, &url, 320, 240, 1.5, &[]);
    wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running
    });
    let frames = frames_for(&mut reader, Duration::from_secs(6));
    let rate = measured_rate(&frames);
    eprintln!("1.5 Hz requested: {} frames, {rate:.3} Hz", frames.len());
    assert!(frames.len() >= 8, "{} frames", frames.len());
    assert!(
        (1.425..=1.575).contains(&rate),
        "rate {rate}, expected 1.5 ±5% (not truncated to 1)"
    );
}

#[test]
fn server_outage_is_survived_without_a_restart() {
    let port = free_port().to_string();
    let (server, url) = rtsp_server(&["--port", &port, "--width", "320", "--height", "240"]);
    let ring = ring("outage", 320, 240);
    let mut cap = capture(&ring, &url, 320, 240, 10.0, &["--stall-timeout-s", "2"]);
    let running = wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running && s.frames > 5
    });
    let pid = cap.pid();

    server.kill().unwrap(); // the camera goes away
    let down = wait_status(&mut cap, Duration::from_secs(10), |s| {
        s.state == StreamState::Reconnecting
    });
    eprintln!("server killed: {:?}", down.last_error);
    assert!(down.last_error.is_some());

    let (_server, _) = rtsp_server(&["--port", &port, "--width", "320", "--height", "240"]);
    let back = wait_status(&mut cap, Duration::from_secs(40), |s| {
        s.state == StreamState::Running && s.frames > down.frames + 5
    });
    assert!(cap.is_running());
    assert_eq!(cap.pid(), pid);
    assert_eq!(back.epoch, running.epoch, "same process, same writer epoch");
    assert!(back.reconnects >= 1);
    assert!(back.last_seq > down.last_seq);
}

#[test]
fn a_camera_that_comes_back_is_reconnected_at_once_not_after_the_backoff() {
    let port = free_port().to_string();
    let args = ["--port", &port, "--width", "320", "--height", "240"];
    let (server, url) = rtsp_server(&args);
    let ring = ring("return", 320, 240);
    let mut cap = capture(&ring, &url, 320, 240, 10.0, &["--stall-timeout-s", "2"]);
    wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running && s.frames > 5
    });
    // Down for 20 s: the backoff grows to 8 s and more between attempts.
    server.kill().unwrap();
    let killed = Instant::now();
    let down = wait_status(&mut cap, Duration::from_secs(10), |s| {
        s.state == StreamState::Reconnecting
    });
    let waiting = wait_status(&mut cap, Duration::from_secs(20), |s| {
        s.state == StreamState::Reconnecting && s.retry_in_ms.is_some_and(|ms| ms >= 8000)
    });
    let delay = waiting.retry_in_ms.unwrap();
    std::thread::sleep(Duration::from_secs(20).saturating_sub(killed.elapsed()));
    let (_server, _) = rtsp_server(&args);
    let returned = Instant::now();
    let back = wait_status(&mut cap, Duration::from_secs(30), |s| {
        s.state == StreamState::Running && s.frames > down.frames
    });
    let took = returned.elapsed();
    eprintln!("camera back → frames after {took:?} (the backoff was {delay} ms)");
    // Probed once a second: back well within the backoff it would have waited.
    assert!(
        took < Duration::from_secs(5),
        "{took:?} with a {delay} ms backoff"
    );
    assert!(back.reconnects >= 1);
}

#[test]
fn silent_source_backs_off_and_stays_up() {
    // Accepts RTSP connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let ring = ring("silent", 320, 240);
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let mut cap = capture(&ring, &url, 320, 240, 5.0, &["--stall-timeout-s", "0.5"]);
    let mut delays = Vec::new();
    let until = Instant::now() + Duration::from_secs(12);
    while delays.len() < 4 && Instant::now() < until {
        let s = wait_status(&mut cap, Duration::from_secs(12), |s| {
            s.state == StreamState::Reconnecting
        });
        if delays.last() != s.retry_in_ms.as_ref() {
            assert!(
                s.last_error.as_deref().unwrap_or("").contains("stalled"),
                "{:?}",
                s.last_error
            );
            delays.push(s.retry_in_ms.unwrap());
        }
    }
    eprintln!("backoff delays: {delays:?}");
    assert_eq!(delays, [500, 1000, 2000, 4000]);
    assert!(cap.is_running());
}

#[test]
fn refused_connection_is_reported_without_leaking_credentials() {
    let ring = ring("refused", 320, 240);
    let url = format!("rtsp://operator:hunter2@127.0.0.1:{}/cam", free_port());
    let mut cap = capture(&ring, &url, 320, 240, 5.0, &[]);
    let mut seen = String::new();
    let down = cap
        .wait_for(Duration::from_secs(15), |line| {
            seen.push_str(line);
            parse_status(line).filter(|s| s.state == StreamState::Reconnecting && s.reconnects >= 2)
        })
        .unwrap();
    let error = down.last_error.unwrap();
    eprintln!("refused: {error}");
    assert!(!error.is_empty());
    assert_eq!(down.source, url.replace("operator:hunter2@", ""));
    assert!(cap.is_running());
    let logs = cap.stderr_text();
    assert!(
        logs.contains("Could not open resource"),
        "the error is logged: {logs}"
    );
    for (what, text) in [("status lines", &seen), ("logs", &logs)] {
        assert!(
            !text.contains("hunter2") && !text.contains("operator"),
            "credentials in {what}"
        );
    }
    let exit = cap.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(exit.success(), "SIGTERM is an orderly stop: {exit}");
}

#[test]
fn bad_arguments_exit_2_with_a_clear_error() {
    let ring = ring("badargs", 320, 240);
    for (source, expect) in [
        (
            "http://127.0.0.1/cam",
            "unsupported camera source scheme \"http\"",
        ),
        ("file:///no/such/video.mp4", "does not name a readable file"),
        ("test://", "rate_hz must be"),
    ] {
        let rate = if source == "test://" { "45" } else { "5" };
        let out = Command::new(env!("CARGO_BIN_EXE_orion-capture"))
            .args([
                "--ring",
                &ring.source().to_string(),
                "--source",
                source,
                "--rate-hz",
                rate,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{source}: {stderr}");
        assert!(stderr.contains(expect), "{source}: {stderr}");
    }
}

#[test]
fn missing_ring_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_orion-capture"))
        .args(["--ring", "/orion-no-such-ring-xyz", "--source", "test://"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/orion-no-such-ring-xyz does not exist"),
        "{stderr}"
    );
}

#[test]
fn odd_width_frames_have_padded_stride_and_intact_rows() {
    let ring = ring("odd", 426, 320);
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let mut cap = capture(&ring, "test://smpte", 426, 320, 10.0, &[]);
    wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running
    });
    reader.wait_for_newer(0, Duration::from_secs(5)).unwrap();
    let mut pixels = Vec::new();
    let Read::Frame(meta) = reader.read_latest_into(&mut pixels).unwrap() else {
        panic!("no frame")
    };
    assert_eq!((meta.geometry.width(), meta.geometry.height()), (426, 320));
    assert_eq!(meta.geometry.stride(), 1280, "426*3 = 1278, padded to 4");
    // Colour bars: the top half of the picture has identical rows. A stride mistake shears
    // them; padding mistaken for pixels shifts them.
    let row = |y: usize| &pixels[y * 1280..y * 1280 + 1278];
    let distinct_colours: std::collections::HashSet<&[u8]> = row(0).chunks(3).collect();
    assert!(
        distinct_colours.len() >= 7,
        "expected colour bars, got {} colours",
        distinct_colours.len()
    );
    for y in 1..160 {
        assert_eq!(row(y), row(0), "row {y} differs from row 0");
    }
}

#[test]
fn file_source_loops_forever() {
    // A 1 s clip: the capture must loop it several times without a reconnect.
    let clip = std::env::temp_dir().join(format!("orion-clip-{}.mp4", std::process::id()));
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=30",
            "!",
            "video/x-raw,width=320,height=240,framerate=30/1",
        ])
        .args(["!", "x264enc", "!", "mp4mux", "!", "filesink"])
        .arg(format!("location={}", clip.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let ring = ring("file", 320, 240);
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let mut cap = capture(
        &ring,
        &format!("file://{}", clip.display()),
        320,
        240,
        10.0,
        &[],
    );
    wait_status(&mut cap, Duration::from_secs(15), |s| {
        s.state == StreamState::Running
    });
    let frames = frames_for(&mut reader, Duration::from_secs(4));
    let status = wait_status(&mut cap, Duration::from_secs(5), |_| true);
    std::fs::remove_file(&clip).unwrap();
    let rate = measured_rate(&frames);
    eprintln!(
        "looping 1 s clip at 10 Hz: {} frames, {rate:.2} Hz, {} reconnects",
        frames.len(),
        status.reconnects
    );
    assert!(
        frames.last().unwrap().seq - frames[0].seq >= 30,
        "frames stopped: {}",
        frames.len()
    );
    assert!((8.0..=12.0).contains(&rate), "rate {rate}");
    assert_eq!(status.reconnects, 0);
}

/// Make-before-break: a capture started with `--standby` decodes and holds frames beside the
/// running writer without writing one; told to take over once that writer is gone, it
/// claims the ring (next epoch, the sequence continued) and its first frame follows the old
/// one's last within a frame interval or so. Told to take over while a writer lives, a
/// successor refuses and exits, and the writer is untouched: one writer at a time.
#[test]
fn a_standby_capture_takes_the_ring_over_only_from_a_writer_that_is_gone() {
    let (_server, url) = rtsp_server(&["--width", "320", "--height", "240", "--fps", "30"]);
    let ring = ring("handover", 320, 240);
    let mut reader = RingReader::attach(ring.source().clone()).unwrap();
    let mut old = capture(&ring, &url, 320, 240, 10.0, &[]);
    let running = wait_status(&mut old, Duration::from_secs(15), |s| {
        s.state == StreamState::Running
    });
    let mut new = capture(&ring, &url, 320, 240, 5.0, &["--standby"]);
    let standby = wait_status(&mut new, Duration::from_secs(15), |s| {
        s.state == StreamState::Standby
    });
    assert_eq!((standby.frames, standby.epoch), (0, 0), "{standby:?}");
    // Both decode; only the old one writes.
    let side_by_side = frames_for(&mut reader, Duration::from_secs(1));
    assert!(side_by_side.len() >= 5, "{}", side_by_side.len());
    assert!(side_by_side.iter().all(|f| f.epoch == running.epoch));

    old.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let Read::Frame(last_old) = reader.read_latest_meta().unwrap() else {
        panic!("no frame in the ring");
    };
    // Watching before the take-over: a held frame is written the moment it happens.
    let mut watcher = RingReader::attach(ring.source().clone()).unwrap();
    let watching = std::thread::spawn(move || frames_for(&mut watcher, Duration::from_secs(3)));
    new.send_line(r#"{"type":"take_over"}"#).unwrap();
    let took = wait_status(&mut new, Duration::from_secs(5), |s| {
        s.state == StreamState::Running
    });
    assert_eq!(took.epoch, running.epoch + 1, "{took:?}");
    let after = watching.join().unwrap();
    let first_new = after.first().expect("frames after the take-over");
    assert_eq!(first_new.epoch, running.epoch + 1);
    assert_eq!(first_new.seq, last_old.seq + 1, "the sequence continues");
    let gap_ms = (first_new.monotonic_ns - last_old.monotonic_ns) as f64 / 1e6;
    eprintln!("old writer's last frame → successor's first: {gap_ms:.0} ms");
    assert!(
        first_new.monotonic_ns > last_old.monotonic_ns && gap_ms < 1000.0,
        "gap {gap_ms} ms"
    );

    // A second successor cannot take the ring from a live writer.
    let mut third = capture(&ring, &url, 320, 240, 5.0, &["--standby"]);
    wait_status(&mut third, Duration::from_secs(15), |s| {
        s.state == StreamState::Standby
    });
    third.send_line(r#"{"type":"take_over"}"#).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while third.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(third.exit_status().and_then(|s| s.code()), Some(1));
    assert!(
        third.stderr_text().contains("cannot take the ring over"),
        "{}",
        third.stderr_text()
    );
    let still = frames_for(&mut reader, Duration::from_secs(1));
    assert!(still.len() >= 3 && still.iter().all(|f| f.epoch == running.epoch + 1));
}

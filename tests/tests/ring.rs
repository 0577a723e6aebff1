//! Cross-process tests of the frame ring, with real processes and real signals.
//!
//! - `writer_killed_mid_write_200_times_never_yields_a_torn_frame`: the SIGKILL soak.
//! - `reader_started_before_the_ring_exists_catches_up`: start-order independence.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use orion_ring::{PixelFormat, RingGeometry, RingName, RingOwner, RingReader};
use orion_tests::child::ChildGuard;
use orion_tests::ring_probe::{ReaderSummary, WriterReady, WriterSummary};

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 1024;

fn unique_ring(tag: &str) -> RingName {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    RingName::new(&format!("/orion-it-{}-{tag}-{n}", std::process::id())).unwrap()
}

fn writer_cmd(ring: &RingName, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ring-writer"));
    cmd.args([
        "--ring",
        ring.as_str(),
        "--width",
        &WIDTH.to_string(),
        "--height",
        &HEIGHT.to_string(),
    ]);
    cmd.args(extra);
    cmd
}

fn reader(ring: &RingName) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ring-reader"));
    cmd.args(["--ring", ring.as_str()]);
    ChildGuard::spawn(cmd).unwrap()
}

fn wait_attached(reader: &mut ChildGuard) {
    let line = reader.next_line().unwrap();
    assert!(line.contains("attached"), "{line}");
}

/// Cheap deterministic jitter so kills land at varied points of a write.
fn jitter_ms(i: u32) -> u64 {
    u64::from((i.wrapping_mul(2_654_435_761)) >> 28) % 12 + 1
}

#[test]
fn writer_killed_mid_write_200_times_never_yields_a_torn_frame() {
    const KILLS: u32 = 200;
    let ring = unique_ring("kill");
    // Two 1 MiB slots: a full-speed writer laps a checksumming reader often.
    let owner = RingOwner::create(
        ring.clone(),
        RingGeometry::for_frames(2, WIDTH, HEIGHT, PixelFormat::Gray8).unwrap(),
    )
    .unwrap();
    let probe = RingReader::attach(ring.clone()).unwrap();

    let mut early = reader(&ring); // started before any writer
    wait_attached(&mut early);
    let mut late = None;
    let mut killed_mid_write = 0;

    for i in 0..KILLS {
        let before = probe.writer_info();
        let mut writer = ChildGuard::spawn(writer_cmd(&ring, &[])).unwrap();
        let ready: WriterReady = serde_json::from_str(&writer.next_line().unwrap()).unwrap();
        // A restarted writer starts a new epoch and continues the sequence.
        assert_eq!(ready.epoch, u64::from(i) + 1, "kill {i}");
        assert_eq!(ready.next_seq, before.latest_seq + 1, "kill {i}");

        std::thread::sleep(Duration::from_millis(jitter_ms(i)));
        writer.kill().unwrap();

        if probe.slot_states().iter().any(|s| s.being_written) {
            killed_mid_write += 1;
        }
        let after = probe.writer_info();
        assert!(
            after.latest_seq >= before.latest_seq,
            "sequence went backwards at kill {i}"
        );
        if i == KILLS / 2 {
            let mut r = reader(&ring); // started while writers come and go
            wait_attached(&mut r);
            late = Some(r);
        }
    }

    // A last writer that exits cleanly: readers see its frames too.
    let last = ChildGuard::spawn(writer_cmd(
        &ring,
        &["--frames", "50", "--interval-us", "2000"],
    ))
    .unwrap();
    let last: WriterSummary = serde_json::from_str(&last.join().unwrap()).unwrap();
    assert_eq!(last.frames, 50);
    assert_eq!(
        probe.writer_info().pid,
        0,
        "a clean exit releases the writer claim"
    );
    std::thread::sleep(Duration::from_millis(100));

    let early: ReaderSummary = serde_json::from_str(&early.finish().unwrap()).unwrap();
    let late: ReaderSummary = serde_json::from_str(&late.unwrap().finish().unwrap()).unwrap();
    eprintln!("kills={KILLS} mid_write={killed_mid_write} early={early:?} late={late:?}");

    assert!(
        killed_mid_write >= KILLS / 2,
        "only {killed_mid_write} of {KILLS} kills hit a write"
    );
    for (who, s) in [("early", &early), ("late", &late)] {
        assert_eq!(
            s.torn_accepted, 0,
            "{who} reader accepted torn frames: {s:?}"
        );
        assert_eq!(s.seq_regressions, 0, "{who}: {s:?}");
        assert!(s.accepted > 0, "{who} reader read nothing: {s:?}");
        assert_eq!(
            s.last_seq, last.last_seq,
            "{who} reader missed the final frame: {s:?}"
        );
    }
    assert!(
        early.torn_detected + late.torn_detected > 0,
        "the readers were never lapped: the race was not exercised"
    );
    assert!(
        early.distinct_epochs > u64::from(KILLS) / 2,
        "early reader followed few writers: {early:?}"
    );
    drop(owner);
}

#[test]
fn reader_started_before_the_ring_exists_catches_up() {
    let ring = unique_ring("order");
    let mut r = reader(&ring);
    std::thread::sleep(Duration::from_millis(50));
    let owner = RingOwner::create(
        ring.clone(),
        RingGeometry::for_frames(2, WIDTH, HEIGHT, PixelFormat::Gray8).unwrap(),
    )
    .unwrap();
    wait_attached(&mut r);
    let w = ChildGuard::spawn(writer_cmd(
        &ring,
        &["--frames", "20", "--interval-us", "5000"],
    ))
    .unwrap();
    let w: WriterSummary = serde_json::from_str(&w.join().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let s: ReaderSummary = serde_json::from_str(&r.finish().unwrap()).unwrap();
    assert_eq!(s.torn_accepted, 0, "{s:?}");
    assert!(
        s.accepted >= 10,
        "paced frames should nearly all be read: {s:?}"
    );
    assert_eq!(s.last_seq, w.last_seq);
    drop(owner);
}

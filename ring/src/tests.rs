//! In-process tests: round trips, bad inputs, and a property test of the seqlock protocol
//! that interleaves writer and reader steps (including writer crashes) one by one.
//! Multi-process SIGKILL tests live in the `orion-tests` crate.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::mapping::Mapped;
use crate::*;

/// A ring name unique to this test process and call, removed by the owner on drop.
fn unique_name(tag: &str) -> RingName {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RingName::new(&format!("/orion-unit-{}-{tag}-{n}", std::process::id())).unwrap()
}

fn shm_path(name: &RingName) -> String {
    format!("{SHM_DIR}{}", name.as_str())
}

fn named(owner: &RingOwner) -> &RingName {
    match owner.source() {
        ShmSource::Named(name) => name,
        ShmSource::Fd(_) => panic!("not a named ring"),
    }
}

fn small_ring(tag: &str, slots: u32, capacity: u64) -> RingOwner {
    RingOwner::create(
        unique_name(tag),
        RingGeometry::new(slots, capacity).unwrap(),
    )
    .unwrap()
}

/// A sealed ring: readers and the writer attach through the owner's descriptors, nobody
/// can resize it (so no reader can take SIGBUS), and a read-only descriptor cannot write.
#[test]
fn sealed_ring_is_shared_by_descriptor_and_cannot_be_resized() {
    use std::os::fd::IntoRawFd;
    let owner =
        RingOwner::create_sealed("orion-unit-sealed", RingGeometry::new(2, 4096).unwrap()).unwrap();
    let rw = owner.share(Access::ReadWrite).unwrap();
    let ro = owner.share(Access::ReadOnly).unwrap();
    let flags = |fd: &std::os::fd::OwnedFd| {
        nix::fcntl::OFlag::from_bits_truncate(
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).unwrap(),
        )
    };
    assert!(flags(&rw).contains(nix::fcntl::OFlag::O_RDWR));
    assert!(!flags(&ro).contains(nix::fcntl::OFlag::O_RDWR));
    // Nobody holding the object may shrink or grow it, whatever its access mode.
    for len in [0, 4096, 1 << 30] {
        assert_eq!(
            nix::unistd::ftruncate(&rw, len),
            Err(nix::errno::Errno::EPERM),
            "len {len}"
        );
    }
    let mut writer = RingWriter::attach(owner.source().clone()).unwrap();
    let mut reader = RingReader::attach(owner.source().clone()).unwrap();
    let frame = FrameGeometry::packed(4, 4, PixelFormat::Rgb8).unwrap();
    writer.write(frame, CaptureTime::now(), &[7; 48]).unwrap();
    let mut buf = Vec::new();
    assert!(matches!(
        reader.read_latest_into(&mut buf).unwrap(),
        Read::Frame(_)
    ));
    assert_eq!(buf, vec![7; 48]);
    // A named ring cannot be handed down.
    let named_ring = small_ring("share", 2, 64);
    assert!(named_ring.share(Access::ReadOnly).is_err());
    // An inherited descriptor must be sealed: a plain file is refused.
    let plain = std::fs::File::open("/proc/self/status").unwrap();
    // Handed over to `inherited`, which closes it on refusal.
    let number = std::os::fd::OwnedFd::from(plain).into_raw_fd();
    let err = ShmSource::inherited(number, "plain").unwrap_err();
    assert!(err.to_string().contains("not a memfd"), "{err}");
    // The read-only descriptor, taken over as if inherited, attaches a reader.
    let number = ro.into_raw_fd();
    let source = ShmSource::inherited(number, "orion-unit-sealed").unwrap();
    assert!(source.to_string().contains("memfd:orion-unit-sealed"));
    let mut second = RingReader::attach(source.clone()).unwrap();
    assert!(matches!(
        second.read_latest_into(&mut buf).unwrap(),
        Read::Frame(_)
    ));
    // ...but never a writer.
    assert!(RingWriter::attach(source).is_err());
    // Taking the same number over twice is refused.
    assert!(ShmSource::inherited(number, "again").is_err());
}

/// A successor maps the ring while the writer runs, claims it only once that writer let
/// go, and knows the newest frame's capture time (a held frame older than it is not
/// written).
#[test]
fn a_standby_writer_claims_the_ring_only_after_the_writer_let_go() {
    let owner = small_ring("standby", 3, 4096);
    let frame = FrameGeometry::packed(4, 4, PixelFormat::Rgb8).unwrap();
    let mut first = RingWriter::attach(owner.source().clone()).unwrap();
    assert_eq!(first.latest_monotonic_ns(), None);
    let standby = StandbyWriter::map(owner.source().clone()).unwrap();
    let held = CaptureTime::now();
    let newer = CaptureTime::now();
    first.write(frame, newer, &[1; 48]).unwrap();
    assert_eq!(first.latest_monotonic_ns(), Some(newer.monotonic_ns));
    let epoch = first.epoch();
    // While the first writer holds the ring, a claim is refused (the standby is consumed:
    // map again to retry).
    match standby.claim() {
        Err(RingError::WriterBusy { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected WriterBusy, got {:?}", other.map(|w| w.epoch())),
    }
    let standby = StandbyWriter::map(owner.source().clone()).unwrap();
    drop(first);
    let mut second = standby.claim().unwrap();
    assert_eq!(second.epoch(), epoch + 1);
    assert_eq!(second.next_seq(), 2, "the sequence continues");
    assert!(second.latest_monotonic_ns().unwrap() > held.monotonic_ns);
    second.write(frame, CaptureTime::now(), &[2; 48]).unwrap();
    let mut reader = RingReader::attach(owner.source().clone()).unwrap();
    let mut buf = Vec::new();
    match reader.read_latest_into(&mut buf).unwrap() {
        Read::Frame(meta) => {
            assert_eq!((meta.seq, meta.epoch), (2, epoch + 1));
        }
        _ => panic!("no frame"),
    }
}

#[test]
fn round_trip_keeps_metadata_and_pixels() {
    let owner = small_ring("roundtrip", 3, 4096);
    let mut writer = RingWriter::attach(owner.source().clone()).unwrap();
    let mut reader = RingReader::attach(owner.source().clone()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(reader.read_latest_into(&mut buf).unwrap(), Read::NoFrame);

    let frame = FrameGeometry::packed(5, 3, PixelFormat::Rgb8).unwrap(); // stride 16
    let payload: Vec<u8> = (0..frame.full_len() as u8).collect();
    let time = CaptureTime {
        realtime_ns: 1_700_000_000_000_000_000,
        monotonic_ns: 42,
    };
    for expected_seq in 1..=5 {
        assert_eq!(writer.write(frame, time, &payload).unwrap(), expected_seq);
    }
    let Read::Frame(meta) = reader.read_latest_into(&mut buf).unwrap() else {
        panic!("no frame")
    };
    assert_eq!(meta.seq, 5);
    assert_eq!(meta.epoch, 1);
    assert_eq!(meta.geometry, frame);
    assert_eq!(meta.geometry.stride(), 16);
    assert_eq!(
        (meta.realtime_ns, meta.monotonic_ns),
        (time.realtime_ns, time.monotonic_ns)
    );
    assert_eq!(buf, payload);
    // The reader took seq 5 first: nothing skipped yet. Two more, read only the last.
    writer.write(frame, time, &payload).unwrap();
    writer.write(frame, time, &payload).unwrap();
    reader.read_latest_into(&mut buf).unwrap();
    assert_eq!(
        reader.stats(),
        ReaderStats {
            frames: 2,
            torn: 0,
            skipped: 1
        }
    );
}

#[test]
fn ring_object_is_private_to_its_user() {
    let owner = small_ring("mode", 1, 16);
    let mode = std::fs::metadata(shm_path(named(&owner)))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn owner_drop_unlinks_and_create_replaces_stale_object() {
    let name = unique_name("stale");
    std::fs::write(shm_path(&name), b"left over by a crashed run").unwrap();
    let owner = RingOwner::create(name.clone(), RingGeometry::new(2, 64).unwrap()).unwrap();
    assert!(RingReader::attach(name.clone()).is_ok());
    drop(owner);
    assert!(matches!(
        RingReader::attach(name),
        Err(RingError::NotFound { .. })
    ));
}

#[test]
fn ring_larger_than_dev_shm_is_refused_naming_sizes() {
    let geometry = RingGeometry::new(layout::MAX_SLOTS, layout::MAX_SLOT_CAPACITY).unwrap();
    let free = shm_free_bytes().unwrap();
    assert!(
        geometry.total_size() > free,
        "test assumes /dev/shm smaller than 256 GiB"
    );
    let name = unique_name("nospace");
    let err = RingOwner::create(name.clone(), geometry).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, RingError::NoSpace { .. }), "{msg}");
    assert!(
        msg.contains(&geometry.total_size().to_string()) && msg.contains("/dev/shm"),
        "{msg}"
    );
    assert!(
        !std::path::Path::new(&shm_path(&name)).exists(),
        "nothing left behind"
    );
}

#[test]
fn attach_rejects_wrong_magic() {
    let name = unique_name("magic");
    std::fs::write(shm_path(&name), vec![0xAB; 8192]).unwrap();
    let err = RingReader::attach(name.clone()).err().unwrap();
    assert!(matches!(err, RingError::BadMagic { .. }), "{err}");
    assert!(err.to_string().contains("not an Orion frame ring"), "{err}");
    unlink(&name).unwrap();
}

#[test]
fn attach_rejects_other_abi_version() {
    let owner = small_ring("version", 2, 64);
    let path = shm_path(named(&owner));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = RingWriter::attach(owner.source().clone()).err().unwrap();
    assert!(
        matches!(
            err,
            RingError::AbiVersion {
                found: 99,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn attach_rejects_truncated_objects() {
    let owner = small_ring("trunc", 4, 8192);
    let path = shm_path(named(&owner));
    let full = owner.geometry().total_size();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full - 4096).unwrap();
    let err = RingReader::attach(owner.source().clone()).err().unwrap();
    assert!(matches!(err, RingError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains(&full.to_string()), "{err}");
    file.set_len(100).unwrap(); // shorter than the header itself
    let err = RingReader::attach(owner.source().clone()).err().unwrap();
    assert!(
        matches!(err, RingError::Truncated { actual: 100, .. }),
        "{err}"
    );
}

#[test]
fn attach_rejects_inconsistent_header() {
    let owner = small_ring("corrupt", 2, 64);
    let path = shm_path(named(&owner));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16..20].copy_from_slice(&0u32.to_le_bytes()); // zero slots
    std::fs::write(&path, bytes).unwrap();
    let err = RingReader::attach(owner.source().clone()).err().unwrap();
    assert!(matches!(err, RingError::CorruptHeader { .. }), "{err}");
}

#[test]
fn bad_frames_are_refused_and_change_nothing() {
    let owner = small_ring("badframe", 2, 64);
    let mut writer = RingWriter::attach(owner.source().clone()).unwrap();
    let frame = FrameGeometry::packed(4, 4, PixelFormat::Rgb8).unwrap(); // 48 bytes
    let err = writer
        .write(frame, CaptureTime::now(), &[0; 65])
        .unwrap_err();
    assert!(
        matches!(
            err,
            RingError::FrameTooLarge {
                len: 65,
                capacity: 64
            }
        ),
        "{err}"
    );
    let err = writer
        .write(frame, CaptureTime::now(), &[0; 40])
        .unwrap_err();
    assert!(
        matches!(err, RingError::PayloadTooShort { needed: 48, .. }),
        "{err}"
    );
    assert_eq!(writer.info().latest_seq, 0);
    assert_eq!(writer.next_seq(), 1);
}

#[test]
fn one_live_writer_at_a_time_and_epochs_count_attaches() {
    let owner = small_ring("writers", 2, 64);
    let first = RingWriter::attach(owner.source().clone()).unwrap();
    assert_eq!(first.epoch(), 1);
    let err = RingWriter::attach(owner.source().clone()).err().unwrap();
    assert!(matches!(err, RingError::WriterBusy { .. }), "{err}");
    drop(first);
    assert_eq!(owner.writer_info().pid, 0);
    let second = RingWriter::attach(owner.source().clone()).unwrap();
    assert_eq!(second.epoch(), 2);
    assert_eq!(owner.writer_info().pid, std::process::id());
    // A writer that never detached (killed) under a pid that is alive again (recycled):
    // busy until the owner, having reaped the writer, clears that pid, and only that one.
    std::mem::forget(second);
    assert!(matches!(
        RingWriter::attach(owner.source().clone()),
        Err(RingError::WriterBusy { .. })
    ));
    owner.clear_writer(std::process::id() + 1);
    assert_eq!(owner.writer_info().pid, std::process::id());
    owner.clear_writer(std::process::id());
    assert_eq!(owner.writer_info().pid, 0);
    let third = RingWriter::attach(owner.source().clone()).unwrap();
    assert_eq!(third.epoch(), 3);
}

#[test]
fn wait_for_newer_times_out_then_wakes_on_publish() {
    let owner = small_ring("wait", 2, 64);
    let reader = RingReader::attach(owner.source().clone()).unwrap();
    let start = Instant::now();
    assert_eq!(reader.wait_for_newer(0, Duration::from_millis(50)), None);
    assert!(start.elapsed() >= Duration::from_millis(50));

    let name = owner.source().clone();
    let publisher = std::thread::spawn(move || {
        let mut writer = RingWriter::attach(name).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let frame = FrameGeometry::packed(2, 2, PixelFormat::Gray8).unwrap();
        writer.write(frame, CaptureTime::now(), &[1; 8]).unwrap();
    });
    let start = Instant::now();
    assert_eq!(reader.wait_for_newer(0, Duration::from_secs(10)), Some(1));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "woken by the publish, not the timeout"
    );
    publisher.join().unwrap();
    // Already newer: returns at once.
    assert_eq!(reader.wait_for_newer(0, Duration::ZERO), Some(1));
}

// ---- the seqlock protocol, step by step ---------------------------------------------------

const CAP: u64 = 48;
const CHUNK: u64 = 16;

/// The bytes frame `seq` of writer epoch `epoch` carries in this test.
fn pattern(seq: u64, epoch: u64) -> Vec<u8> {
    (0..CAP)
        .map(|i| (seq.wrapping_mul(131) ^ epoch.wrapping_mul(29) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    WriterBegin,
    WriterChunk,
    WriterFinish,
    WriterCrash,
    ReaderBegin,
    ReaderChunk,
    ReaderFinish,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::WriterBegin),
        3 => Just(Step::WriterChunk),
        3 => Just(Step::WriterFinish),
        1 => Just(Step::WriterCrash),
        3 => Just(Step::ReaderBegin),
        3 => Just(Step::ReaderChunk),
        3 => Just(Step::ReaderFinish),
    ]
}

struct WriterState {
    seq: u64,
    index: u32,
    written: u64,
}

struct ReaderState {
    seq: u64,
    index: u32,
    raw: crate::mapping::RawMeta,
    copied: Vec<u8>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the interleaving of writer steps, writer crashes (a new writer taking over
    /// with a new epoch and the continued sequence) and reader steps, a read the protocol
    /// accepts holds exactly the bytes of the frame it names.
    #[test]
    fn accepted_reads_are_never_torn(slots in 1u32..=3, steps in prop::collection::vec(step(), 1..200)) {
        let owner = small_ring("proto", slots, CAP);
        let w = Mapped::attach_rw(owner.source().clone()).unwrap();
        let r = Mapped::attach_ro(owner.source().clone()).unwrap();
        let frame = FrameGeometry::packed(4, 4, PixelFormat::Rgb8).unwrap();
        let (mut epoch, mut next_seq) = (1u64, 1u64);
        let mut writing: Option<WriterState> = None;
        let mut reading: Option<ReaderState> = None;
        let (mut accepted, mut torn) = (0u32, 0u32);

        for s in steps {
            match s {
                Step::WriterBegin if writing.is_none() => {
                    let index = w.begin_write(next_seq);
                    writing = Some(WriterState { seq: next_seq, index, written: 0 });
                }
                Step::WriterChunk | Step::WriterFinish => {
                    let Some(ws) = writing.as_mut() else { continue };
                    let bytes = pattern(ws.seq, epoch);
                    let end = if matches!(s, Step::WriterFinish) { CAP } else { (ws.written + CHUNK).min(CAP) };
                    w.write_payload(ws.index, ws.written, &bytes[ws.written as usize..end as usize]);
                    ws.written = end;
                    if matches!(s, Step::WriterFinish) {
                        let meta = FrameMeta { seq: ws.seq, epoch, realtime_ns: 1, monotonic_ns: 2, geometry: frame, payload_len: CAP };
                        w.finish_write(ws.index, &meta);
                        w.publish(ws.seq, 3);
                        next_seq += 1;
                        writing = None;
                    }
                }
                Step::WriterCrash => {
                    // The process dies wherever it is; its successor starts as attach does.
                    writing = None;
                    epoch += 1;
                    next_seq = w.header().latest_seq.load(Ordering::Acquire) + 1;
                }
                Step::ReaderBegin if reading.is_none() => {
                    let seq = r.header().latest_seq.load(Ordering::Acquire);
                    if seq == 0 { continue; }
                    match r.begin_read(seq) {
                        Some((index, raw)) => reading = Some(ReaderState { seq, index, raw, copied: Vec::new() }),
                        None => torn += 1,
                    }
                }
                Step::ReaderChunk | Step::ReaderFinish => {
                    let Some(rs) = reading.as_mut() else { continue };
                    let from = rs.copied.len() as u64;
                    let end = if matches!(s, Step::ReaderFinish) { CAP } else { (from + CHUNK).min(CAP) };
                    r.copy_payload(rs.index, from, end - from, &mut rs.copied);
                    if matches!(s, Step::ReaderFinish) {
                        let rs = reading.take().unwrap();
                        if r.verify_read(rs.index, &rs.raw) {
                            let meta = r.validate_meta(rs.index, rs.seq, &rs.raw).unwrap();
                            prop_assert_eq!(&rs.copied, &pattern(rs.seq, meta.epoch), "accepted a torn frame {}", rs.seq);
                            accepted += 1;
                        } else {
                            torn += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        let _ = (accepted, torn);
    }
}

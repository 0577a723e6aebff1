//! A mapped ring object and the seqlock protocol steps on it.
//!
//! The writer and reader modules compose these steps; keeping the steps here, each with its
//! memory ordering spelled out, lets the property tests interleave them one by one.

use std::sync::atomic::{Ordering, fence};

use memmap2::{Mmap, MmapMut};

use crate::RingError;
use crate::layout::{
    ABI_VERSION, FrameGeometry, FrameMeta, HEADER_SIZE, Header, MAGIC, PixelFormat, RingGeometry,
    SLOT_HEADER_SIZE, SLOTS_OFFSET, SlotHeader, seqlock_stable, seqlock_writing,
};
use crate::source::ShmSource;

enum Map {
    ReadWrite(MmapMut),
    ReadOnly(Mmap),
}

impl Map {
    fn as_ptr(&self) -> *const u8 {
        match self {
            Map::ReadWrite(m) => m.as_ptr(),
            Map::ReadOnly(m) => m.as_ptr(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Map::ReadWrite(m) => m.len(),
            Map::ReadOnly(m) => m.len(),
        }
    }

    fn header(&self) -> &Header {
        debug_assert!(self.len() as u64 >= HEADER_SIZE);
        // SAFETY: every mapping is at least HEADER_SIZE bytes (checked when opened or
        // created) and page-aligned, which satisfies Header's 64-byte alignment. Header is
        // made only of atomics and padding, so any bit pattern is a valid value and shared
        // access from other processes is race-free.
        unsafe { &*(self.as_ptr() as *const Header) }
    }
}

/// One process's mapping of a ring whose header has been validated.
pub(crate) struct Mapped {
    source: ShmSource,
    map: Map,
    geometry: RingGeometry,
}

/// The raw slot metadata as read before validation (it may be torn).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMeta {
    seqlock: u64,
    frame_seq: u64,
    realtime_ns: u64,
    monotonic_ns: u64,
    width: u32,
    height: u32,
    stride: u32,
    format: u32,
    payload_len: u64,
    epoch: u64,
}

impl RawMeta {
    pub(crate) fn monotonic_ns(&self) -> u64 {
        self.monotonic_ns
    }
}

impl Mapped {
    /// Writes a fresh header into a zeroed, newly created object.
    pub(crate) fn initialize(source: ShmSource, map: MmapMut, geometry: RingGeometry) -> Self {
        debug_assert!(map.len() as u64 >= geometry.total_size());
        debug_assert!(map.iter().take(HEADER_SIZE as usize).all(|&b| b == 0));
        let mapped = Self {
            source,
            map: Map::ReadWrite(map),
            geometry,
        };
        let h = mapped.header();
        h.abi_version.store(ABI_VERSION, Ordering::Relaxed);
        h.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
        h.slot_count.store(geometry.slots(), Ordering::Relaxed);
        h.slot_header_size
            .store(SLOT_HEADER_SIZE as u32, Ordering::Relaxed);
        h.slot_stride
            .store(geometry.slot_stride(), Ordering::Relaxed);
        h.slot_capacity
            .store(geometry.slot_capacity(), Ordering::Relaxed);
        h.slots_offset.store(SLOTS_OFFSET, Ordering::Relaxed);
        h.total_size.store(geometry.total_size(), Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load of `magic` in `validate`, so a
        // process that sees the magic also sees the geometry above.
        h.magic.store(MAGIC, Ordering::Release);
        mapped
    }

    pub(crate) fn attach_rw(source: ShmSource) -> Result<Self, RingError> {
        let map = crate::shm::open_rw(&source)?;
        Self::validate(source, Map::ReadWrite(map))
    }

    pub(crate) fn attach_ro(source: ShmSource) -> Result<Self, RingError> {
        let map = crate::shm::open_ro(&source)?;
        Self::validate(source, Map::ReadOnly(map))
    }

    /// Checks magic, ABI version and geometry against the object's real size.
    fn validate(source: ShmSource, map: Map) -> Result<Self, RingError> {
        let len = map.len() as u64;
        let h = map.header();
        let ring = &source.to_string();
        let magic = h.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(RingError::BadMagic {
                name: ring.to_owned(),
                found: magic,
                expected: MAGIC,
            });
        }
        let version = h.abi_version.load(Ordering::Relaxed);
        if version != ABI_VERSION {
            return Err(RingError::AbiVersion {
                name: ring.to_owned(),
                found: version,
                expected: ABI_VERSION,
            });
        }
        let corrupt = |reason: String| RingError::CorruptHeader {
            name: ring.to_owned(),
            reason,
        };
        let geometry = RingGeometry::new(
            h.slot_count.load(Ordering::Relaxed),
            h.slot_capacity.load(Ordering::Relaxed),
        )
        .map_err(|e| corrupt(e.to_string()))?;
        let checks = [
            (
                "header_size",
                u64::from(h.header_size.load(Ordering::Relaxed)),
                HEADER_SIZE,
            ),
            (
                "slot_header_size",
                u64::from(h.slot_header_size.load(Ordering::Relaxed)),
                SLOT_HEADER_SIZE,
            ),
            (
                "slot_stride",
                h.slot_stride.load(Ordering::Relaxed),
                geometry.slot_stride(),
            ),
            (
                "slots_offset",
                h.slots_offset.load(Ordering::Relaxed),
                SLOTS_OFFSET,
            ),
            (
                "total_size",
                h.total_size.load(Ordering::Relaxed),
                geometry.total_size(),
            ),
        ];
        for (field, found, expected) in checks {
            if found != expected {
                return Err(corrupt(format!(
                    "{field} is {found}, the geometry implies {expected}"
                )));
            }
        }
        if len < geometry.total_size() {
            return Err(RingError::Truncated {
                name: ring.to_owned(),
                actual: len,
                expected: geometry.total_size(),
            });
        }
        Ok(Self {
            source,
            map,
            geometry,
        })
    }

    pub(crate) fn source(&self) -> &ShmSource {
        &self.source
    }

    pub(crate) fn geometry(&self) -> RingGeometry {
        self.geometry
    }

    fn base(&self) -> *const u8 {
        self.map.as_ptr()
    }

    pub(crate) fn header(&self) -> &Header {
        self.map.header()
    }

    pub(crate) fn slot(&self, index: u32) -> &SlotHeader {
        debug_assert!(index < self.geometry.slots());
        // SAFETY: `index < slots` (callers derive it from `slot_for`), and `validate` /
        // `initialize` checked that every slot lies inside the mapping. Slot offsets are
        // page-aligned; SlotHeader is atomics only, so any bit pattern is valid.
        unsafe {
            &*(self.base().add(self.geometry.slot_offset(index) as usize) as *const SlotHeader)
        }
    }

    fn payload_ptr(&self, index: u32) -> *const u8 {
        // SAFETY: as in `slot`: the payload of a valid slot index lies inside the mapping.
        unsafe {
            self.base()
                .add(self.geometry.payload_offset(index) as usize)
        }
    }

    /// The payload of `index` for writing; `None` on a read-only mapping.
    fn payload_mut_ptr(&self, index: u32) -> Option<*mut u8> {
        match &self.map {
            Map::ReadWrite(_) => Some(self.payload_ptr(index) as *mut u8),
            Map::ReadOnly(_) => None,
        }
    }

    // ---- writer steps -------------------------------------------------------------------

    /// Step 1: mark the slot of `seq` as being written. Returns the slot index.
    pub(crate) fn begin_write(&self, seq: u64) -> u32 {
        let index = self.geometry.slot_for(seq);
        self.slot(index)
            .seqlock
            .store(seqlock_writing(seq), Ordering::Relaxed);
        // SYNC POINT: this Release fence keeps the odd word ordered before every payload
        // and metadata store that follows (pairs with the reader's Acquire fence in
        // `verify_read`): a reader that saw any new byte will see the word changed.
        fence(Ordering::Release);
        index
    }

    /// Step 2: copy `src` into the slot's payload at `offset`. Callers keep
    /// `offset + src.len()` within the slot capacity.
    pub(crate) fn write_payload(&self, index: u32, offset: u64, src: &[u8]) {
        assert!(
            offset + src.len() as u64 <= self.geometry.slot_capacity(),
            "payload write out of slot"
        );
        let Some(dst) = self.payload_mut_ptr(index) else {
            unreachable!("writer steps are only reachable through a read-write mapping");
        };
        // SAFETY: the destination range lies inside this slot's payload (asserted above);
        // `src` is a separate Rust slice, so the ranges cannot overlap. Readers may copy
        // these bytes concurrently; they validate the seqlock afterwards and discard what
        // they read if it changed (the seqlock protocol of ring/README.md).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.add(offset as usize), src.len()) };
    }

    /// Step 3: store the metadata and mark the slot stable with frame `seq`.
    pub(crate) fn finish_write(&self, index: u32, meta: &FrameMeta) {
        let s = self.slot(index);
        s.frame_seq.store(meta.seq, Ordering::Relaxed);
        s.realtime_ns.store(meta.realtime_ns, Ordering::Relaxed);
        s.monotonic_ns.store(meta.monotonic_ns, Ordering::Relaxed);
        s.width.store(meta.geometry.width(), Ordering::Relaxed);
        s.height.store(meta.geometry.height(), Ordering::Relaxed);
        s.stride.store(meta.geometry.stride(), Ordering::Relaxed);
        s.format
            .store(meta.geometry.format() as u32, Ordering::Relaxed);
        s.payload_len.store(meta.payload_len, Ordering::Relaxed);
        s.epoch.store(meta.epoch, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the reader's Acquire load of the seqlock in
        // `begin_read`: a reader that sees the even word sees the whole frame.
        s.seqlock.store(seqlock_stable(meta.seq), Ordering::Release);
    }

    /// Step 4: make `seq` the newest frame and wake sleeping readers.
    pub(crate) fn publish(&self, seq: u64, now_monotonic_ns: u64) {
        let h = self.header();
        // SYNC POINT: Release pairs with the reader's Acquire load of `latest_seq`.
        h.latest_seq.store(seq, Ordering::Release);
        h.writer_heartbeat_ns
            .store(now_monotonic_ns, Ordering::Relaxed);
        // SYNC POINT: bumping the futex word after `latest_seq` means a reader that read
        // the old word before checking `latest_seq` either sees the new seq or has its
        // FUTEX_WAIT fail with EAGAIN / be woken below.
        h.wake_word.fetch_add(1, Ordering::Release);
        crate::sync::futex_wake_all(&h.wake_word);
    }

    // ---- reader steps -------------------------------------------------------------------

    /// Step 1: load the slot of `seq` and its raw metadata. `None` if the slot does not
    /// hold `seq` in a stable state (being written, or already overwritten).
    pub(crate) fn begin_read(&self, seq: u64) -> Option<(u32, RawMeta)> {
        let index = self.geometry.slot_for(seq);
        let s = self.slot(index);
        // SYNC POINT: Acquire pairs with the Release store in `finish_write`.
        let seqlock = s.seqlock.load(Ordering::Acquire);
        if seqlock != seqlock_stable(seq) {
            return None;
        }
        let raw = RawMeta {
            seqlock,
            frame_seq: s.frame_seq.load(Ordering::Relaxed),
            realtime_ns: s.realtime_ns.load(Ordering::Relaxed),
            monotonic_ns: s.monotonic_ns.load(Ordering::Relaxed),
            width: s.width.load(Ordering::Relaxed),
            height: s.height.load(Ordering::Relaxed),
            stride: s.stride.load(Ordering::Relaxed),
            format: s.format.load(Ordering::Relaxed),
            payload_len: s.payload_len.load(Ordering::Relaxed),
            epoch: s.epoch.load(Ordering::Relaxed),
        };
        Some((index, raw))
    }

    /// Step 2 (optional): appends the slot's payload bytes `from..from + len` (clamped to
    /// the capacity) to `out`.
    ///
    /// The writer may be changing them meanwhile (the seqlock's optimistic read): they are
    /// copied through a raw pointer, never seen as a `&[u8]` while shared, and the copy is
    /// only to be trusted if `verify_read` then returns true.
    pub(crate) fn copy_payload(&self, index: u32, from: u64, len: u64, out: &mut Vec<u8>) {
        let cap = self.geometry.slot_capacity();
        let from = from.min(cap);
        let len = len.min(cap - from) as usize;
        out.reserve(len);
        let at = out.len();
        // SAFETY: the source range lies inside slot `index`'s payload (clamped above) and
        // the destination has `len` bytes reserved past `at`; the two never overlap (one is
        // the shared mapping, the other this process's heap). Any byte value is a valid u8,
        // so bytes the writer changes mid-copy make a wrong copy, never an invalid one,
        // and `verify_read` rejects it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.payload_ptr(index).add(from as usize),
                out.as_mut_ptr().add(at),
                len,
            );
            out.set_len(at + len);
        }
    }

    /// Step 3: true if the slot still holds what `begin_read` saw.
    pub(crate) fn verify_read(&self, index: u32, raw: &RawMeta) -> bool {
        // SYNC POINT: the Acquire fence keeps every payload and metadata load above ordered
        // before the re-check below (pairs with the writer's Release fence in `begin_write`).
        fence(Ordering::Acquire);
        self.slot(index).seqlock.load(Ordering::Relaxed) == raw.seqlock
    }

    /// Turns verified raw metadata into a [`FrameMeta`], rejecting what a sane writer
    /// could never have written.
    pub(crate) fn validate_meta(
        &self,
        index: u32,
        seq: u64,
        raw: &RawMeta,
    ) -> Result<FrameMeta, RingError> {
        let corrupt = |reason: String| RingError::CorruptSlot {
            name: self.source.to_string(),
            slot: index,
            reason,
        };
        if raw.frame_seq != seq {
            return Err(corrupt(format!(
                "frame_seq {} under seqlock of frame {seq}",
                raw.frame_seq
            )));
        }
        let format = PixelFormat::from_abi(raw.format)
            .ok_or_else(|| corrupt(format!("unknown pixel format {}", raw.format)))?;
        let geometry = FrameGeometry::new(raw.width, raw.height, raw.stride, format)
            .map_err(|e| corrupt(e.to_string()))?;
        let capacity = self.geometry.slot_capacity();
        if raw.payload_len > capacity || raw.payload_len < geometry.min_payload_len() {
            return Err(corrupt(format!(
                "payload_len {} outside {}..={capacity} for {}x{} stride {}",
                raw.payload_len,
                geometry.min_payload_len(),
                raw.width,
                raw.height,
                raw.stride
            )));
        }
        Ok(FrameMeta {
            seq,
            epoch: raw.epoch,
            realtime_ns: raw.realtime_ns,
            monotonic_ns: raw.monotonic_ns,
            geometry,
            payload_len: raw.payload_len,
        })
    }
}

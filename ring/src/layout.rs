//! Byte layout of the ring: the header, the slots, and the arithmetic between them.
//!
//! Everything here is plain data and pure functions; `ring/README.md` is the same layout
//! written for people (and for readers in other languages).

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::RingError;

/// `b"ORIONRNG"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"ORIONRNG");
/// Bumped on any change to the byte layout or the protocol.
pub const ABI_VERSION: u32 = 1;
/// Page size the layout aligns to (slots start on page boundaries).
pub const PAGE: u64 = 4096;
/// The header occupies the first page; slots start right after it.
pub const SLOTS_OFFSET: u64 = PAGE;
/// Bytes of per-slot metadata before the payload (one cache line).
pub const SLOT_HEADER_SIZE: u64 = 64;
/// Upper bound on slots: a mailbox needs few; this only stops absurd configs.
pub const MAX_SLOTS: u32 = 1024;
/// Upper bound on one slot's payload (256 MiB, far above an 8K RGB frame).
pub const MAX_SLOT_CAPACITY: u64 = 256 << 20;

/// The ring header, at offset 0 of the shared-memory object.
///
/// Every field is an atomic so that any process may read it at any time without a data
/// race; fields in the first cache line never change after creation.
#[repr(C, align(64))]
pub(crate) struct Header {
    // cache line 0: geometry, written once by the creator (magic last).
    pub magic: AtomicU64,
    pub abi_version: AtomicU32,
    pub header_size: AtomicU32,
    pub slot_count: AtomicU32,
    pub slot_header_size: AtomicU32,
    pub slot_stride: AtomicU64,
    pub slot_capacity: AtomicU64,
    pub slots_offset: AtomicU64,
    pub total_size: AtomicU64,
    _pad0: [u8; 8],
    // cache line 1: the writer's identity and liveness.
    pub writer_epoch: AtomicU64,
    pub writer_pid: AtomicU32,
    _pad1: u32,
    pub writer_heartbeat_ns: AtomicU64,
    _pad2: [u8; 40],
    // cache line 2: publication (the only line written per frame).
    pub latest_seq: AtomicU64,
    pub wake_word: AtomicU32,
    _pad3: [u8; 52],
    // cache line 3: reserved, zero.
    _reserved: [u8; 64],
}

/// Per-slot metadata, at the start of each slot; the payload follows it.
#[repr(C, align(64))]
pub(crate) struct SlotHeader {
    /// `2 * seq` when the slot holds frame `seq`; `2 * seq + 1` while it is being written.
    pub seqlock: AtomicU64,
    pub frame_seq: AtomicU64,
    pub realtime_ns: AtomicU64,
    pub monotonic_ns: AtomicU64,
    pub width: AtomicU32,
    pub height: AtomicU32,
    pub stride: AtomicU32,
    pub format: AtomicU32,
    pub payload_len: AtomicU64,
    pub epoch: AtomicU64,
}

/// Size of [`Header`] in bytes (256).
pub const HEADER_SIZE: u64 = size_of::<Header>() as u64;

// The README documents these numbers; fail the build if the structs drift from them.
const _: () = {
    assert!(size_of::<Header>() == 256);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, abi_version) == 8);
    assert!(offset_of!(Header, header_size) == 12);
    assert!(offset_of!(Header, slot_count) == 16);
    assert!(offset_of!(Header, slot_header_size) == 20);
    assert!(offset_of!(Header, slot_stride) == 24);
    assert!(offset_of!(Header, slot_capacity) == 32);
    assert!(offset_of!(Header, slots_offset) == 40);
    assert!(offset_of!(Header, total_size) == 48);
    assert!(offset_of!(Header, writer_epoch) == 64);
    assert!(offset_of!(Header, writer_pid) == 72);
    assert!(offset_of!(Header, writer_heartbeat_ns) == 80);
    assert!(offset_of!(Header, latest_seq) == 128);
    assert!(offset_of!(Header, wake_word) == 136);
    assert!(size_of::<SlotHeader>() as u64 == SLOT_HEADER_SIZE);
    assert!(offset_of!(SlotHeader, seqlock) == 0);
    assert!(offset_of!(SlotHeader, frame_seq) == 8);
    assert!(offset_of!(SlotHeader, realtime_ns) == 16);
    assert!(offset_of!(SlotHeader, monotonic_ns) == 24);
    assert!(offset_of!(SlotHeader, width) == 32);
    assert!(offset_of!(SlotHeader, height) == 36);
    assert!(offset_of!(SlotHeader, stride) == 40);
    assert!(offset_of!(SlotHeader, format) == 44);
    assert!(offset_of!(SlotHeader, payload_len) == 48);
    assert!(offset_of!(SlotHeader, epoch) == 56);
    assert!(HEADER_SIZE <= SLOTS_OFFSET);
};

/// Validated ring dimensions: how many slots, how many payload bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    slots: u32,
    slot_capacity: u64,
}

impl RingGeometry {
    /// Checks `slots` (1..=1024) and `slot_capacity` (1..=256 MiB).
    pub fn new(slots: u32, slot_capacity: u64) -> Result<Self, RingError> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(RingError::SlotCount {
                got: slots,
                max: MAX_SLOTS,
            });
        }
        if slot_capacity == 0 || slot_capacity > MAX_SLOT_CAPACITY {
            return Err(RingError::SlotCapacity {
                got: slot_capacity,
                max: MAX_SLOT_CAPACITY,
            });
        }
        Ok(Self {
            slots,
            slot_capacity,
        })
    }

    /// Geometry whose slots hold one `width`×`height` frame of `format` with 4-byte row
    /// alignment (GStreamer's default for RGB).
    pub fn for_frames(
        slots: u32,
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<Self, RingError> {
        let stride = align_up(u64::from(width) * format.bytes_per_pixel(), 4);
        Self::new(slots, stride * u64::from(height))
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn slot_capacity(&self) -> u64 {
        self.slot_capacity
    }

    /// Bytes from one slot's start to the next: header + payload, rounded to a page.
    pub fn slot_stride(&self) -> u64 {
        align_up(SLOT_HEADER_SIZE + self.slot_capacity, PAGE)
    }

    /// Offset of slot `index`'s header from the start of the object.
    pub fn slot_offset(&self, index: u32) -> u64 {
        SLOTS_OFFSET + u64::from(index) * self.slot_stride()
    }

    /// Offset of slot `index`'s payload from the start of the object.
    pub fn payload_offset(&self, index: u32) -> u64 {
        self.slot_offset(index) + SLOT_HEADER_SIZE
    }

    /// Size of the whole shared-memory object.
    pub fn total_size(&self) -> u64 {
        SLOTS_OFFSET + u64::from(self.slots) * self.slot_stride()
    }

    /// The slot that frame `seq` lives in.
    pub fn slot_for(&self, seq: u64) -> u32 {
        // The remainder is < slots, which is a u32.
        (seq % u64::from(self.slots)) as u32
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two).
pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

/// Seqlock word for a slot that holds frame `seq`, stable.
pub const fn seqlock_stable(seq: u64) -> u64 {
    seq << 1
}

/// Seqlock word for a slot while frame `seq` is being written into it.
pub const fn seqlock_writing(seq: u64) -> u64 {
    (seq << 1) | 1
}

/// Pixel layouts a slot may hold. The numeric values are part of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PixelFormat {
    /// 8-bit R, G, B interleaved (GStreamer `RGB`).
    Rgb8 = 1,
    /// 8-bit luma only (GStreamer `GRAY8`).
    Gray8 = 2,
}

impl PixelFormat {
    pub const fn bytes_per_pixel(self) -> u64 {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Gray8 => 1,
        }
    }

    pub fn from_abi(value: u32) -> Option<Self> {
        match value {
            1 => Some(PixelFormat::Rgb8),
            2 => Some(PixelFormat::Gray8),
            _ => None,
        }
    }
}

/// Validated shape of one frame: rows of `stride` bytes, `width` pixels used per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGeometry {
    width: u32,
    height: u32,
    stride: u32,
    format: PixelFormat,
}

impl FrameGeometry {
    /// Checks that the size is non-zero and each row's pixels fit its stride.
    pub fn new(
        width: u32,
        height: u32,
        stride: u32,
        format: PixelFormat,
    ) -> Result<Self, RingError> {
        if width == 0 || height == 0 {
            return Err(RingError::Geometry(format!(
                "{width}x{height} has no pixels"
            )));
        }
        let row = u64::from(width) * format.bytes_per_pixel();
        if u64::from(stride) < row {
            return Err(RingError::Geometry(format!(
                "stride {stride} is shorter than a row of {width} {format:?} pixels ({row} bytes)"
            )));
        }
        Ok(Self {
            width,
            height,
            stride,
            format,
        })
    }

    /// Tightly packed rows padded to 4 bytes, as GStreamer lays out RGB.
    pub fn packed(width: u32, height: u32, format: PixelFormat) -> Result<Self, RingError> {
        let stride = align_up(u64::from(width) * format.bytes_per_pixel(), 4);
        let stride = u32::try_from(stride)
            .map_err(|_| RingError::Geometry(format!("width {width} is too large")))?;
        Self::new(width, height, stride, format)
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn stride(&self) -> u32 {
        self.stride
    }
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Bytes the payload must have at least: full rows except the last, which may stop
    /// at the last pixel (GStreamer may omit the final row's padding).
    pub fn min_payload_len(&self) -> u64 {
        u64::from(self.stride) * u64::from(self.height - 1)
            + u64::from(self.width) * self.format.bytes_per_pixel()
    }

    /// Bytes of `height` full rows.
    pub fn full_len(&self) -> u64 {
        u64::from(self.stride) * u64::from(self.height)
    }
}

/// Everything a reader learns about a frame besides its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Frame sequence number: 1 for the first frame ever written, +1 per frame, continued
    /// across writer restarts.
    pub seq: u64,
    /// Epoch of the writer that wrote the frame (bumped on every writer attach).
    pub epoch: u64,
    /// Capture time, CLOCK_REALTIME nanoseconds.
    pub realtime_ns: u64,
    /// Capture time, CLOCK_MONOTONIC nanoseconds (comparable across processes).
    pub monotonic_ns: u64,
    pub geometry: FrameGeometry,
    pub payload_len: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn slots_are_page_aligned_disjoint_and_inside(slots in 1u32..=MAX_SLOTS, cap in 1u64..=MAX_SLOT_CAPACITY) {
            let g = RingGeometry::new(slots, cap).unwrap();
            prop_assert_eq!(g.slot_stride() % PAGE, 0);
            prop_assert!(g.slot_stride() >= SLOT_HEADER_SIZE + cap);
            for i in [0, slots / 2, slots - 1] {
                prop_assert_eq!(g.slot_offset(i) % PAGE, 0);
                prop_assert_eq!(g.payload_offset(i) % 64, 0);
                // payload ends before the next slot starts and inside the object
                prop_assert!(g.payload_offset(i) + cap <= g.slot_offset(i) + g.slot_stride());
                prop_assert!(g.payload_offset(i) + cap <= g.total_size());
                prop_assert!(g.slot_offset(i) >= SLOTS_OFFSET);
            }
            prop_assert_eq!(g.total_size(), g.slot_offset(slots - 1) + g.slot_stride());
        }

        #[test]
        fn every_seq_maps_to_a_slot(slots in 1u32..=MAX_SLOTS, seq in any::<u64>()) {
            let g = RingGeometry::new(slots, 1).unwrap();
            prop_assert!(g.slot_for(seq) < slots);
            // consecutive frames never share a slot unless there is only one
            if slots > 1 {
                prop_assert_ne!(g.slot_for(seq), g.slot_for(seq.wrapping_add(1)));
            }
        }

        #[test]
        fn seqlock_words_are_distinct(a in 0u64..(u64::MAX >> 2), b in 0u64..(u64::MAX >> 2)) {
            prop_assert_eq!(seqlock_stable(a) % 2, 0);
            prop_assert_eq!(seqlock_writing(a) % 2, 1);
            prop_assert_ne!(seqlock_stable(a), seqlock_writing(b));
            if a != b { prop_assert_ne!(seqlock_stable(a), seqlock_stable(b)); }
        }

        #[test]
        fn packed_frames_fit_their_geometry(w in 1u32..8192, h in 1u32..4400) {
            let f = FrameGeometry::packed(w, h, PixelFormat::Rgb8).unwrap();
            let g = RingGeometry::for_frames(2, w, h, PixelFormat::Rgb8).unwrap();
            prop_assert_eq!(f.stride() % 4, 0);
            prop_assert!(f.min_payload_len() <= f.full_len());
            prop_assert_eq!(f.full_len(), g.slot_capacity());
        }
    }

    #[test]
    fn zero_slots_and_capacity_are_rejected() {
        assert!(matches!(
            RingGeometry::new(0, 10),
            Err(RingError::SlotCount { got: 0, .. })
        ));
        assert!(matches!(
            RingGeometry::new(2, 0),
            Err(RingError::SlotCapacity { got: 0, .. })
        ));
        let msg = RingGeometry::new(0, 10).unwrap_err().to_string();
        assert!(msg.contains("1..=1024"), "{msg}");
    }

    #[test]
    fn odd_width_rgb_stride_is_padded_to_four() {
        let f = FrameGeometry::packed(426, 320, PixelFormat::Rgb8).unwrap();
        assert_eq!(f.stride(), 1280); // 1278 rounded up
        assert_eq!(f.min_payload_len(), 1280 * 319 + 1278);
    }

    #[test]
    fn stride_shorter_than_row_is_rejected() {
        let err = FrameGeometry::new(100, 10, 299, PixelFormat::Rgb8).unwrap_err();
        assert!(err.to_string().contains("stride 299"), "{err}");
        assert!(FrameGeometry::new(0, 10, 300, PixelFormat::Rgb8).is_err());
    }
}

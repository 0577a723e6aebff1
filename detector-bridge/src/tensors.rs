//! The tensor buffer shared with the worker: a sealed memfd (`orion-<id>-tensors`) handed to
//! the worker as a read-only descriptor, two float32 slots. Nothing else can reach it by
//! name (ADR 0005).
//!
//! Layout (documented for the worker in detector-bridge/README.md; read by
//! `python/orion_worker/tensors.py`): a 4096-byte header — magic u64 `ORIONTNS`
//! (little-endian), version u32 = 1, slot count u32 = 2, slot bytes u64, data offset u64 =
//! 4096 — then the slots. Slot `i` holds `[1, 3, S, S]` float32 (native byte order) at
//! `4096 + i * slot_bytes`, for the `S` named in the infer request. Only this process
//! writes, and only a slot the worker is not using.

use std::os::fd::OwnedFd;

use orion_ring::{Access, RingError, ShmRegion, ShmSource};

pub const MAGIC: u64 = u64::from_le_bytes(*b"ORIONTNS");
pub const VERSION: u32 = 1;
pub const SLOTS: usize = 2;
pub const DATA_OFFSET: usize = 4096;
/// Largest tensor side.
pub const MAX_IMGSZ: usize = 640;
pub const SLOT_FLOATS: usize = 3 * MAX_IMGSZ * MAX_IMGSZ;
const SLOT_BYTES: usize = SLOT_FLOATS * 4;

pub struct TensorBuffer {
    region: ShmRegion,
}

impl TensorBuffer {
    /// Creates the buffer as a sealed memfd labelled `label`.
    pub fn create(label: &str) -> Result<Self, RingError> {
        let mut region =
            ShmRegion::create_sealed(label, (DATA_OFFSET + SLOTS * SLOT_BYTES) as u64)?;
        let header = region.as_mut_slice();
        header[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(SLOTS as u32).to_le_bytes());
        header[16..24].copy_from_slice(&(SLOT_BYTES as u64).to_le_bytes());
        header[24..32].copy_from_slice(&(DATA_OFFSET as u64).to_le_bytes());
        Ok(Self { region })
    }

    pub fn source(&self) -> &ShmSource {
        self.region.source()
    }

    /// A read-only descriptor for a worker.
    pub fn share_read_only(&self) -> Result<OwnedFd, RingError> {
        self.region.share(Access::ReadOnly)
    }

    /// The floats of slot `index` (< [`SLOTS`]).
    pub fn slot_mut(&mut self, index: usize) -> &mut [f32] {
        let start = DATA_OFFSET + index * SLOT_BYTES;
        let bytes = &mut self.region.as_mut_slice()[start..start + SLOT_BYTES];
        // Page-aligned mapping + page-aligned offset: always 4-byte aligned.
        bytemuck::try_cast_slice_mut(bytes).unwrap_or_default()
    }
}

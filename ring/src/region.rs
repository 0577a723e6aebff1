//! A plain shared-memory region: created by one process, which alone writes it; the others
//! map it read-only and are told by message which part to read (the detector's tensor
//! buffer). No protocol inside — ordering comes from the messages (a pipe write after the
//! memory write, a pipe read before the memory read).

use memmap2::MmapMut;

use crate::{RingError, RingName};

/// An owned, writable shared-memory object (mode 0600, pages reserved up front); unlinked
/// when dropped.
pub struct ShmRegion {
    name: RingName,
    map: MmapMut,
}

impl ShmRegion {
    /// Creates `name` with `size` bytes, zeroed, replacing a stale object of that name.
    pub fn create(name: RingName, size: u64) -> Result<Self, RingError> {
        let map = crate::shm::create(&name, size)?;
        Ok(Self { name, map })
    }

    pub fn name(&self) -> &RingName {
        &self.name
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.map
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        let _ = crate::shm::unlink(&self.name);
    }
}

//! A plain shared-memory region: created by one process, which alone writes it; the others
//! map it read-only and are told by message which part to read (the detector's tensor
//! buffer). No protocol inside — ordering comes from the messages (a pipe write after the
//! memory write, a pipe read before the memory read).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use memmap2::MmapMut;

use crate::source::{Access, ShmSource};
use crate::{RingError, RingName};

/// An owned, writable shared-memory object with its pages reserved up front: named (mode
/// 0600, unlinked when dropped) or a sealed memfd handed to readers by descriptor.
pub struct ShmRegion {
    source: ShmSource,
    map: MmapMut,
}

impl ShmRegion {
    /// Creates `name` with `size` bytes, zeroed, replacing a stale object of that name.
    pub fn create(name: RingName, size: u64) -> Result<Self, RingError> {
        let map = crate::shm::create(&name, size)?;
        Ok(Self {
            source: ShmSource::Named(name),
            map,
        })
    }

    /// Creates an anonymous region of `size` bytes, zeroed, sealed against resizing.
    pub fn create_sealed(label: &str, size: u64) -> Result<Self, RingError> {
        let (fd, map) = crate::shm::create_sealed(label, size)?;
        Ok(Self {
            source: ShmSource::Fd(Arc::new(fd)),
            map,
        })
    }

    pub fn source(&self) -> &ShmSource {
        &self.source
    }

    /// A descriptor of a sealed region for a reader (read-only) or a co-writer.
    pub fn share(&self, access: Access) -> Result<OwnedFd, RingError> {
        crate::owner::share(&self.source, access)
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
        if let ShmSource::Named(name) = &self.source {
            let _ = crate::shm::unlink(name);
        }
    }
}

//! The ring's owner: creates the object, removes it when dropped.

use std::sync::atomic::Ordering;

use crate::layout::RingGeometry;
use crate::mapping::Mapped;
use crate::{RingError, RingName};

/// What any process can learn about the current writer from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterInfo {
    /// pid of the attached writer, 0 if none is attached (or it detached cleanly).
    pub pid: u32,
    /// Number of writer attaches so far; 0 before the first writer.
    pub epoch: u64,
    /// CLOCK_MONOTONIC ns of the writer's last publish or heartbeat; 0 before any.
    pub heartbeat_ns: u64,
    /// Newest published frame, 0 before the first.
    pub latest_seq: u64,
}

pub(crate) fn writer_info(mapped: &Mapped) -> WriterInfo {
    let h = mapped.header();
    WriterInfo {
        pid: h.writer_pid.load(Ordering::Acquire),
        epoch: h.writer_epoch.load(Ordering::Acquire),
        heartbeat_ns: h.writer_heartbeat_ns.load(Ordering::Relaxed),
        latest_seq: h.latest_seq.load(Ordering::Acquire),
    }
}

/// Creates a ring and unlinks it on drop. The supervisor holds the one owner; the capture
/// process attaches a [`crate::RingWriter`] and detectors attach [`crate::RingReader`]s.
pub struct RingOwner {
    mapped: Mapped,
}

impl RingOwner {
    /// Creates `name` with `geometry`, replacing any stale object of that name (left by a
    /// crashed run). Fails with [`RingError::NoSpace`] if /dev/shm cannot hold it.
    pub fn create(name: RingName, geometry: RingGeometry) -> Result<Self, RingError> {
        let map = crate::shm::create(&name, geometry.total_size())?;
        Ok(Self {
            mapped: Mapped::initialize(name, map, geometry),
        })
    }

    pub fn name(&self) -> &RingName {
        self.mapped.name()
    }

    pub fn geometry(&self) -> RingGeometry {
        self.mapped.geometry()
    }

    pub fn writer_info(&self) -> WriterInfo {
        writer_info(&self.mapped)
    }
}

impl Drop for RingOwner {
    fn drop(&mut self) {
        // Processes still attached keep their mappings; the name is gone for new ones.
        let _ = crate::shm::unlink(self.mapped.name());
    }
}

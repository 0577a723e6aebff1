//! The ring's owner: creates the object (named, or a sealed memfd), hands descriptors of a
//! sealed one to children, removes a named one when dropped.

use std::sync::atomic::Ordering;

use crate::layout::RingGeometry;
use std::os::fd::OwnedFd;

use crate::mapping::Mapped;
use crate::source::{Access, ShmSource};
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

/// Creates a ring and, for a named one, unlinks it on drop. The supervisor holds the one
/// owner; the capture process attaches a [`crate::RingWriter`] and detectors attach
/// [`crate::RingReader`]s.
pub struct RingOwner {
    mapped: Mapped,
}

impl RingOwner {
    /// Creates `name` with `geometry`, replacing any stale object of that name (left by a
    /// crashed run). Fails with [`RingError::NoSpace`] if /dev/shm cannot hold it.
    pub fn create(name: RingName, geometry: RingGeometry) -> Result<Self, RingError> {
        let map = crate::shm::create(&name, geometry.total_size())?;
        Ok(Self {
            mapped: Mapped::initialize(ShmSource::Named(name), map, geometry),
        })
    }

    /// Creates an anonymous ring (a memfd labelled `label`) sealed against resizing, for
    /// handing to children by descriptor ([`RingOwner::share`]). Nothing to clean up: it
    /// is gone when the last process holding it exits.
    pub fn create_sealed(label: &str, geometry: RingGeometry) -> Result<Self, RingError> {
        let (fd, map) = crate::shm::create_sealed(label, geometry.total_size())?;
        let source = ShmSource::Fd(std::sync::Arc::new(fd));
        Ok(Self {
            mapped: Mapped::initialize(source, map, geometry),
        })
    }

    /// Where readers and the writer find the ring.
    pub fn source(&self) -> &ShmSource {
        self.mapped.source()
    }

    /// A descriptor of a sealed ring for a child: read-write for the writer, read-only for
    /// readers. Fails for a named ring (children open that by name).
    pub fn share(&self, access: Access) -> Result<OwnedFd, RingError> {
        share(self.mapped.source(), access)
    }

    pub fn geometry(&self) -> RingGeometry {
        self.mapped.geometry()
    }

    pub fn writer_info(&self) -> WriterInfo {
        writer_info(&self.mapped)
    }

    /// Forgets a writer that is known to be dead (its process was reaped), so a recycled
    /// pid can never look like a live writer.
    pub fn clear_writer(&self, pid: u32) {
        let h = self.mapped.header();
        let _ = h
            .writer_pid
            .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

pub(crate) fn share(source: &ShmSource, access: Access) -> Result<OwnedFd, RingError> {
    match source {
        ShmSource::Fd(sealed) => sealed.share(access),
        ShmSource::Named(name) => Err(RingError::io(
            "share",
            name.as_str(),
            std::io::Error::other("a named ring is opened by name, not handed down"),
        )),
    }
}

impl Drop for RingOwner {
    fn drop(&mut self) {
        // Processes still attached keep their mappings; the name is gone for new ones.
        if let ShmSource::Named(name) = self.mapped.source() {
            let _ = crate::shm::unlink(name);
        }
    }
}

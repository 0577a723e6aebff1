//! Orion's shared-memory frame ring.
//!
//! One process creates the ring ([`RingOwner`], the supervisor), one attaches as its single
//! writer ([`RingWriter`], the capture process) and any number attach as readers
//! ([`RingReader`], the detector). Frames go into slots `seq % slots`, each guarded by a
//! seqlock; readers always take the newest frame (mailbox semantics), detect torn reads,
//! and sleep on a futex until something newer is published. Every process may be
//! SIGKILLed at any instant: there are no locks to leave held.
//!
//! The byte layout and protocol are specified in `ring/README.md`; [`layout`] holds the
//! same numbers as code.

mod error;
pub mod layout;
mod mapping;
mod owner;
mod reader;
mod region;
mod shm;
mod source;
mod sync;
mod writer;

pub use error::RingError;
pub use layout::{FrameGeometry, FrameMeta, PixelFormat, RingGeometry};
pub use owner::{RingOwner, WriterInfo};
pub use reader::{Read, ReaderStats, RingReader, SlotState};
pub use region::ShmRegion;
pub use shm::{RingName, SHM_DIR, shm_free_bytes, unlink};
pub use source::{Access, SealedFd, ShmSource};
pub use sync::{monotonic_ns, realtime_ns};
pub use writer::{CaptureTime, RingWriter, StandbyWriter};

#[cfg(test)]
mod tests;

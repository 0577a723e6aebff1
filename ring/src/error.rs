//! The ring's error type.

use std::io;

/// Everything that can go wrong creating, attaching to, writing or reading a ring.
///
/// Each variant names the object and the numbers involved, so a log line is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("invalid ring name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("ring geometry: slot count must be 1..={max}, got {got}")]
    SlotCount { got: u32, max: u32 },

    #[error("ring geometry: slot capacity must be 1..={max} bytes, got {got}")]
    SlotCapacity { got: u64, max: u64 },

    #[error(
        "ring {name} needs {needed} bytes but {dir} has only {free} bytes free; \
         lower [ring] slots or the stream size, or enlarge {dir}"
    )]
    NoSpace {
        name: String,
        needed: u64,
        free: u64,
        dir: &'static str,
    },

    #[error(
        "{name} needs {needed} bytes of shared memory and the system has not got them; \
         lower [ring] slots or the stream size, or free memory"
    )]
    NoMemory { name: String, needed: u64 },

    #[error("shared-memory object {name} does not exist (is the supervisor running?)")]
    NotFound { name: String },

    #[error("{name} is not an Orion frame ring (magic {found:#018x}, expected {expected:#018x})")]
    BadMagic {
        name: String,
        found: u64,
        expected: u64,
    },

    #[error("{name} uses ring ABI version {found}, this build speaks version {expected}")]
    AbiVersion {
        name: String,
        found: u32,
        expected: u32,
    },

    #[error("{name} is truncated: object is {actual} bytes, its header describes {expected} bytes")]
    Truncated {
        name: String,
        actual: u64,
        expected: u64,
    },

    #[error("{name} has an inconsistent header: {reason}")]
    CorruptHeader { name: String, reason: String },

    #[error("ring {name} already has a live writer (pid {pid})")]
    WriterBusy { name: String, pid: u32 },

    #[error("frame of {len} bytes does not fit a ring slot of {capacity} bytes")]
    FrameTooLarge { len: u64, capacity: u64 },

    #[error("frame geometry: {0}")]
    Geometry(String),

    #[error(
        "frame payload is {len} bytes but {width}x{height} with stride {stride} needs {needed}"
    )]
    PayloadTooShort {
        len: u64,
        width: u32,
        height: u32,
        stride: u32,
        needed: u64,
    },

    #[error("slot {slot} of {name} holds a corrupt frame: {reason}")]
    CorruptSlot {
        name: String,
        slot: u32,
        reason: String,
    },

    #[error("{op} on {name}: {source}")]
    Io {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
}

impl RingError {
    pub(crate) fn io(op: &'static str, name: &str, source: impl Into<io::Error>) -> Self {
        RingError::Io {
            op,
            name: name.to_owned(),
            source: source.into(),
        }
    }
}

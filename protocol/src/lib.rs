//! Types Orion's processes share.
//!
//! - [`units`]: validated values ([`RateHz`], [`FrameSize`], [`ModelSize`], [`NormRect`]) so that an out-of-range rate or
//!   size cannot exist past the edge that parsed it.
//! - [`capture`]: what the capture process reports ([`CaptureStatus`], [`StreamState`]).
//! - [`detection`]: the per-frame detection message ([`DetectionMessage`]).
//! - [`command`]: the command catalog, validated, and acknowledgements.
//! - [`focus`]: auto-focus parameters.
//! - [`wire`]: message framing on oriond's socket.

#![forbid(unsafe_code)]

pub mod capture;
pub mod command;
pub mod detection;
pub mod focus;
pub mod units;
pub mod wire;

pub use capture::{CaptureStatus, StreamState};
pub use command::{Ack, AckStatus, Action, Command, ProcessName};
pub use detection::{
    BBox, Detection, DetectionData, DetectionMessage, DetectionMetadata, RoiSource, Timing,
};
pub use units::{FrameSize, ModelSize, NormRect, RateHz, RoiSet, UnitError};

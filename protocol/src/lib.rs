//! Types Orion's processes share.
//!
//! - [`units`]: validated values ([`RateHz`], [`FrameSize`]) so that an out-of-range rate or
//!   size cannot exist past the edge that parsed it.
//! - [`capture`]: what the capture process reports ([`CaptureStatus`], [`StreamState`]).

#![forbid(unsafe_code)]

pub mod capture;
pub mod units;

pub use capture::{CaptureStatus, StreamState};
pub use units::{FrameSize, RateHz, UnitError};

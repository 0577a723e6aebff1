//! Types Orion's processes share.
//!
//! - [`units`]: validated values ([`RateHz`], [`FrameSize`], [`ModelSize`], [`NormRect`]) so that an out-of-range rate or
//!   size cannot exist past the edge that parsed it.
//! - [`capture`]: what the capture process reports ([`CaptureStatus`], [`StreamState`]).
//! - [`detection`]: the per-frame detection message ([`DetectionMessage`]).
//! - [`command`]: the command catalog, validated, and acknowledgements.
//! - [`focus`]: auto-focus parameters.
//! - [`message`]: everything on oriond's socket, typed ([`Message`], requests).
//! - [`detector`]: what the detector reports ([`DetectorStatus`]).
//! - [`instance`]: the instance id and the names derived from it ([`InstanceId`]).
//! - [`limits`]: ranges of settings shared by the config and the command lines.
//! - [`snapshot`]: what a snapshot draws and reports.
//! - [`status`]: the status document oriond reports ([`Status`]), typed end to end.
//! - [`desired`]: the runtime state an operator set ([`Desired`]).
//! - [`occupancy`]: room occupancy as published ([`Occupancy`]).
//! - [`event`]: care events with ids, a start and an end.
//! - [`zone`]: named places in the room ([`Zones`]) with their own occupancy.
//! - [`wire`]: message framing on oriond's socket.

#![forbid(unsafe_code)]

pub mod ack;
pub mod capture;
pub mod command;
pub mod desired;
pub mod detection;
pub mod detector;
pub mod event;
pub mod focus;
pub mod histogram;
pub mod instance;
pub mod limits;
pub mod message;
pub mod mqtt_ack;
pub mod occupancy;
pub mod snapshot;
pub mod status;
pub mod timeouts;
pub mod units;
pub mod wire;
pub mod zone;

pub use capture::{CaptureStatus, StreamState};
pub use command::{Ack, AckError, AckStatus, Action, Command, ErrorKind, ProcessName};
pub use desired::Desired;
pub use detection::{
    BBox, Detection, DetectionData, DetectionMessage, DetectionMetadata, RoiSource, Timing,
};
pub use detector::{DetectorState, DetectorStatus};
pub use instance::{GroupName, InstanceId};
pub use message::{Frame, Message};
pub use occupancy::Occupancy;
pub use status::{ProcessState, Status};
pub use units::{FrameSize, ModelSize, NormRect, RateHz, RoiSet, UnitError};
pub use zone::{Zone, ZoneName, Zones};

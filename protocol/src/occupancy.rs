//! Room occupancy as Orion publishes it (retained `{prefix}/occupancy/{id}`) and shows it
//! in the status; `orion-room` concludes it from the detections.

use serde::{Deserialize, Serialize};

/// What is published (retained `{prefix}/occupancy/{id}`) and shown in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occupancy {
    /// `None`: unknown (see `reason`).
    pub occupied: Option<bool>,
    pub count: u32,
    /// When the current answer began (capture time), RFC 3339.
    pub since: Option<String>,
    /// The last frame with a person in it (capture time), RFC 3339.
    pub last_seen: Option<String>,
    /// The frame that made the current answer.
    pub frame_seq: Option<u64>,
    /// Why it is unknown.
    pub reason: Option<String>,
    /// What the frame that made the current answer showed: the whole frame or a region of
    /// it. `occupied: false` is only ever concluded from the whole frame.
    #[serde(default)]
    pub coverage: Option<Coverage>,
    /// The last frame looked at whole (capture time), RFC 3339.
    #[serde(default)]
    pub last_full_look: Option<String>,
}

/// How much of the frame a judged frame showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// The whole frame.
    Full,
    /// A crop of it (attention ROIs, auto-focus): people outside it were not looked for.
    Region,
}

/// A zone's occupancy (retained `{prefix}/occupancy/{id}/{zone}`): the room's fields, for
/// the persons whose box's bottom centre is inside the zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneOccupancy {
    pub zone: crate::zone::ZoneName,
    #[serde(flatten)]
    pub occupancy: Occupancy,
    /// How long the last visit lasted (occupied until it turned empty), seconds.
    pub last_dwell_s: Option<f64>,
}

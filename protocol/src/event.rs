//! Care events (`{prefix}/events/{id}`, QoS 1): happenings with an id, a start and an end —
//! the room occupied, a zone occupied, a configured class seen (a fall). `orion-room`
//! concludes them; oriond keeps the open ones across its restarts.

use serde::{Deserialize, Serialize};

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    Start,
    /// Still open; something grew (the largest count).
    Update,
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareEvent {
    /// Unique on this device, never reused (oriond's start time and a counter).
    pub event_id: String,
    pub instance_id: String,
    /// `room`, `zone`, or the class name (`Fall`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The zone, for `type: zone`.
    pub zone: Option<String>,
    pub state: EventState,
    /// Capture time of the first frame of it, RFC 3339.
    pub start: String,
    /// Capture time it ended, RFC 3339 (only with `state: end`).
    pub end: Option<String>,
    /// The most persons (or boxes of the class) seen at once.
    pub max_count: u32,
    /// The frame that showed `max_count` first (the best view).
    pub best_frame_seq: u64,
    /// Why it ended other than by what was seen (a zone removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

//! Room logic, kept out of the supervisor: what the detections mean for the room. oriond
//! hosts it through one module (`supervisor/src/supervisor/room.rs`): detections and the
//! system's state go in, the room's state comes out for orion-control to publish. Nothing
//! here does I/O or reads a clock (times come in as the frames' capture times), so every
//! rule is tested without processes.
//!
//! - [`occupancy`]: is someone in the room, how many, since when (debounced);
//! - [`sight`]: whether frames are being judged at all, and if not, why (paused, a process
//!   down, the camera away): then occupancy is unknown, never a stale answer;
//! - [`zones`]: the same per named zone, for the persons standing (or lying) in it;
//! - [`events`]: happenings with ids, a start and an end (room, zone, a class such as
//!   `Fall`), carried on across restarts.

#![forbid(unsafe_code)]

pub mod events;
pub mod occupancy;
pub mod sight;
pub mod zones;

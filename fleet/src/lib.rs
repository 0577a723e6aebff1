//! `orion-fleet`: many rooms seen through the broker, as a backend sees them. [`Fleet`]
//! connects (MQTT 3.1.1, a clean session: the broadest broker support), reads the rooms'
//! retained availability and status, and sends one command to a room or a group, collecting
//! each member's ack by request id. Nothing here talks to oriond: only MQTT.

#![forbid(unsafe_code)]

pub mod broker;
pub mod cli;
pub mod rooms;

pub use broker::{Broker, Fleet};
pub use rooms::{Outcome, Room, Target};

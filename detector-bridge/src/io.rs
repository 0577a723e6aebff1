//! The detector's edge: commands in, acks, status reports and detections out — through
//! `orion_process::channel` (oriond's socket, or JSON lines on stdin/stdout when run by
//! hand), as the typed messages of `orion_protocol::message`. Logs go to stderr.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use orion_process::channel::{self, Incoming};
use orion_protocol::command::{Ack, AckError, Command, parse};
use orion_protocol::message::Message;
use orion_protocol::{DetectionMessage, DetectorStatus};
use serde_json::Value;

/// Reads commands on a thread and hands each to `on_command`.
pub fn read_commands(
    shutdown: Arc<AtomicBool>,
    mut on_command: impl FnMut(Command) + Send + 'static,
) -> anyhow::Result<()> {
    channel::spawn_reader(shutdown, move |incoming| {
        on_command(match incoming {
            Incoming::Message(text) => parse(&text),
            Incoming::Rejected(why) => Command::rejected(why),
        })
    })
}

/// The one ack of `cmd`.
pub fn ack(cmd: &Command, result: Result<Value, AckError>) {
    channel::send(&Message::Ack(Ack::for_command(cmd, result)));
}

pub fn status(status: DetectorStatus) {
    channel::send(&Message::DetectorStatus(status));
}

/// A processed frame; orion-control stamps its publish time from `captured_unix_ns`.
pub fn detection(detection: DetectionMessage, captured_unix_ns: u64) {
    channel::send(&Message::Detection {
        detection,
        captured_unix_ns,
    });
}

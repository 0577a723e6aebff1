//! The detector's edge: commands in, acks, status reports and detections out — through
//! `orion_process::channel` (oriond's socket, or JSON lines on stdin/stdout when run by
//! hand), as the typed messages of `orion_protocol::message`. Logs go to stderr.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use orion_process::channel::{self, Incoming};
use orion_protocol::command::{Ack, AckError, Command, parse};
use orion_protocol::message::{Frame, Message, decode};
use orion_protocol::{DetectionMessage, DetectorStatus};
use serde_json::Value;

/// What oriond sends the detector.
pub enum FromOriond {
    Command(Command),
    /// A standby detector takes the place of the one that died.
    TakeOver,
    /// Whether the box can afford a spare worker now (oriond's memory gate).
    StandIns {
        allowed: bool,
    },
}

/// Reads oriond's commands (and its `take_over`) on a thread and hands each to `on_message`.
pub fn read_commands(
    shutdown: Arc<AtomicBool>,
    mut on_message: impl FnMut(FromOriond) + Send + 'static,
) -> anyhow::Result<()> {
    channel::spawn_reader(shutdown, move |incoming| {
        on_message(match incoming {
            Incoming::Message(text) => match decode(text.as_bytes()) {
                Ok(Frame::Message(m)) => match *m {
                    Message::TakeOver => FromOriond::TakeOver,
                    Message::StandIns { allowed } => FromOriond::StandIns { allowed },
                    _ => FromOriond::Command(parse(&text)),
                },
                _ => FromOriond::Command(parse(&text)),
            },
            Incoming::Rejected(why) => FromOriond::Command(Command::rejected(why)),
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

/// The detector's one signal that it is ready (its worker loaded, and it serves).
pub fn ready() {
    channel::send(&Message::Ready);
}

/// A processed frame; orion-control stamps its publish time from `captured_unix_ns`.
pub fn detection(detection: DetectionMessage, captured_unix_ns: u64) {
    channel::send(&Message::Detection {
        detection,
        captured_unix_ns,
    });
}

//! Operator commands (the catalog in `orion_protocol::command`) and their acks. Each
//! command gets exactly one ack. The commands come from oriond's socket (or stdin when run
//! by hand, see `orion_process::channel`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

use orion_process::channel::{self, Incoming};
use orion_protocol::command::Ack;
pub use orion_protocol::command::{Action, Command, parse};
use serde_json::Value;

use crate::events::Event;

pub fn ack(cmd: &Command, result: Result<Value, String>) -> Ack {
    Ack::for_command(cmd, result)
}

/// Reads commands into the event channel.
pub fn spawn_reader(events: Sender<Event>, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    channel::spawn_reader(shutdown, move |incoming| {
        let cmd = match incoming {
            Incoming::Message(text) => parse(&text),
            Incoming::Rejected(why) => Command::rejected(why),
        };
        let _ = events.send(Event::Command(cmd));
    })
}

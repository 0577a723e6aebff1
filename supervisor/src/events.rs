//! Everything oriond's loop reacts to arrives as one [`Event`] on one channel: child exits
//! and output, socket traffic, timers, signals. Timers are small tasks that sleep and then
//! send their [`Timer`]; a timer of an older generation of a child is recognised and
//! ignored by the loop.

use std::time::{Duration, SystemTime};

use orion_protocol::ProcessName;
use tokio::sync::mpsc;

/// A connection on oriond's socket.
pub type ConnId = u64;

pub use crate::outbox::Outbox;

pub enum Event {
    /// A child process ended (`reaped`: when the reaper task collected it).
    Exited {
        name: ProcessName,
        generation: u64,
        status: String,
        reaped: SystemTime,
    },
    /// A line a child wrote on stdout or stderr.
    Output {
        name: ProcessName,
        line: String,
    },
    /// A peer connected (within the connection limit).
    Accepted {
        conn: ConnId,
        outbox: Outbox,
        peer_pid: Option<u32>,
        /// The peer is a process oriond started, or one of theirs (never an operator).
        descendant: bool,
    },
    /// One framed message from a peer.
    Frame {
        conn: ConnId,
        body: Vec<u8>,
    },
    /// A peer is gone (`why`: it broke the framing).
    Closed {
        conn: ConnId,
        why: Option<String>,
    },
    Timer(Timer),
    /// A snapshot helper finished (see `crate::snapshot_helper`).
    Snapshot {
        id: u64,
        result: Result<Shot, String>,
    },
    /// SIGTERM or SIGINT.
    Terminate,
    /// SIGHUP.
    Reload,
}

/// A snapshot taken: the helper's report and the encoded image.
pub struct Shot {
    pub taken: orion_protocol::snapshot::Taken,
    pub image: Vec<u8>,
}

pub enum Timer {
    Retry {
        name: ProcessName,
        generation: u64,
    },
    Kill {
        name: ProcessName,
        generation: u64,
    },
    ReadyTimeout {
        name: ProcessName,
        generation: u64,
    },
    /// A request to a child that may not be answered.
    Request(u64),
    /// Time to check the standby detector (see `supervisor::standby`).
    Standby,
    /// A capture successor's time to hold its first frame is up.
    Handover {
        generation: u64,
    },
    Watchdog,
    /// Time to update systemd's status line and the metrics textfile.
    Telemetry,
}

pub type Events = mpsc::UnboundedSender<Event>;

/// Sends `timer` after `delay`.
pub fn after(events: &Events, delay: Duration, timer: Timer) {
    let tx = events.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tx.send(Event::Timer(timer));
    });
}

/// The timer `timer()` makes, every `interval` (systemd's watchdog, the standby check).
pub fn every(events: &Events, interval: Duration, timer: fn() -> Timer) {
    let tx = events.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if tx.send(Event::Timer(timer())).is_err() {
                return;
            }
        }
    });
}

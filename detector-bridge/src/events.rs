//! Everything the bridge loop reacts to arrives on one channel, so it sleeps until
//! something happens instead of polling.

use crate::commands::Command;
use crate::worker::Reply;

pub enum Event {
    /// A frame newer than the last one announced was published in the ring.
    Frame(u64),
    /// A reply of worker `generation` (an error if it could not be decoded).
    Worker {
        generation: u64,
        reply: anyhow::Result<Reply>,
    },
    /// Worker `generation`'s output ended: it exited or broke the protocol.
    WorkerGone { generation: u64, why: String },
    /// An operator command (from oriond, or stdin when run by hand).
    Command(Command),
}

//! What the capture process reports about its stream.

use serde::{Deserialize, Serialize};

/// The stream's state machine: connecting → running → stalled/reconnecting → running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// A pipeline is being built or is waiting for its first frame.
    Connecting,
    /// Frames are flowing into the ring.
    Running,
    /// No frame for the stall timeout; the pipeline is about to be torn down.
    Stalled,
    /// The pipeline was torn down (error, end of stream, stall); waiting out the backoff.
    Reconnecting,
    /// A successor (make-before-break rate change): frames flow and the newest is held,
    /// nothing is written until oriond says [`crate::message::Message::TakeOver`].
    Standby,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Running => "running",
            StreamState::Stalled => "stalled",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Standby => "standby",
        }
    }
}

/// One status report of the capture process (printed as a JSON line; the supervisor
/// relays it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureStatus {
    pub state: StreamState,
    /// Frames per second written to the ring, measured over the last 5 s.
    pub fps: f64,
    /// Frames written to the ring since the process started.
    pub frames: u64,
    /// Pipelines torn down and rebuilt since the process started.
    pub reconnects: u64,
    /// Why the last pipeline ended, if one did; never contains credentials.
    pub last_error: Option<String>,
    /// While reconnecting: the backoff delay before the next attempt.
    pub retry_in_ms: Option<u64>,
    /// The source URI with any password removed.
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub rate_hz: f64,
    /// Sequence number of the newest frame this process wrote (0: none yet).
    pub last_seq: u64,
    /// The ring writer epoch of this process.
    pub epoch: u64,
    /// What confines the process (Landlock, seccomp, no_new_privs), or why nothing does.
    #[serde(default)]
    pub sandbox: Option<String>,
}

//! What the detector reports about itself (every status interval, and at once when its
//! worker becomes ready: oriond counts the detector ready on the first report that is
//! neither `starting_worker` nor `standby`).

use serde::{Deserialize, Serialize};

use crate::focus::Strategy;
use crate::units::{ModelSize, NormRect};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorState {
    /// The worker is starting or loading its first model.
    StartingWorker,
    /// Ready; frames are not inferred.
    Paused,
    /// Inferring the newest frames.
    Running,
    /// A standby detector (`--standby`) with its worker loaded, waiting for oriond's
    /// `take_over` after the detector dies; it infers and publishes nothing until then.
    Standby,
}

impl DetectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorState::StartingWorker => "starting_worker",
            DetectorState::Paused => "paused",
            DetectorState::Running => "running",
            DetectorState::Standby => "standby",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoFocusStatus {
    pub enabled: bool,
    pub strategy: Strategy,
    /// The current auto-focus region, if it narrowed on people.
    pub roi: Option<NormRect>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorStatus {
    pub state: DetectorState,
    pub paused: bool,
    pub attention_rois: Vec<NormRect>,
    pub auto_focus: AutoFocusStatus,
    pub model: ModelSize,
    /// Input sizes of the loaded model (640, and 320 if there is one).
    pub sizes_loaded: Vec<u32>,
    /// A model being loaded in the background.
    pub loading: Option<ModelSize>,
    pub worker_pid: Option<u32>,
    pub worker_restarts: u64,
    /// Frames inferred since the detector started.
    pub results: u64,
    /// Results per second over the last seconds.
    pub inference_fps: f64,
    /// Capture → result of the last frame, ms (the MQTT message's `latency_ms` is capture →
    /// publish, stamped by orion-control).
    pub last_result_latency_ms: f64,
    /// Capture → result of every frame since the detector started.
    #[serde(default)]
    pub result_latency: crate::histogram::LatencyHistogram,
    /// Published frames never read because a newer one was taken (mailbox).
    pub frames_skipped: u64,
    /// Reads dropped because the writer overwrote the slot meanwhile.
    pub frames_torn: u64,
    pub worker_errors: u64,
    /// Frames lost with a worker that died while inferring them.
    pub dropped_in_flight: u64,
    /// Model loads given up (the worker restarted on the old model, the command answered
    /// `timeout`).
    #[serde(default)]
    pub swaps_timed_out: u64,
    /// The warm spare worker (current model loaded, idle), if one runs.
    #[serde(default)]
    pub spare_worker_pid: Option<u32>,
    /// It is loaded and would take over a worker death at once.
    #[serde(default)]
    pub spare_worker_ready: bool,
    /// Worker deaths the spare took over.
    #[serde(default)]
    pub spare_takeovers: u64,
    /// oriond shed the spare: the box is short of memory (`[memory]`).
    #[serde(default)]
    pub spare_shed: bool,
}

//! The status document: what oriond reports (`get_status`, `orionctl status`) and, with
//! orion-control's MQTT counters added, the retained `{prefix}/status/{id}`. oriond builds
//! it, orion-control and orionctl read it, all through these types: no field is looked up
//! by name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capture::CaptureStatus;
use crate::command::ProcessName;
use crate::desired::Desired;
use crate::detector::DetectorStatus;
use crate::instance::InstanceId;
use crate::occupancy::Occupancy;

/// supervisord's process states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessState {
    /// Not running, and not meant to run until started.
    Stopped,
    /// Spawned; not yet ready (or being brought to the desired state).
    Starting,
    /// Ready and in the desired state.
    Running,
    /// A start failed; the next attempt is scheduled.
    Backoff,
    /// Asked to stop (SIGTERM sent); waiting for the exit.
    Stopping,
    /// Ended on its own after running long enough; restarted at once unless shutting down.
    Exited,
    /// Gave up after `startretries` failed starts; waits for an operator's start.
    Fatal,
}

impl ProcessState {
    pub const ALL: [ProcessState; 7] = [
        ProcessState::Stopped,
        ProcessState::Starting,
        ProcessState::Running,
        ProcessState::Backoff,
        ProcessState::Stopping,
        ProcessState::Exited,
        ProcessState::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
        }
    }

    /// A process exists (or is being made) in this state.
    pub fn is_alive(self) -> bool {
        matches!(
            self,
            ProcessState::Starting | ProcessState::Running | ProcessState::Stopping
        )
    }
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// When oriond's supervisor acted on the exit (state change), µs since the Unix epoch.
    pub at_unix_us: u64,
    /// When the reaper task collected the exit status, µs since the Unix epoch.
    pub reaped_unix_us: u64,
    /// `exit 1`, `signal 9 (SIGKILL)`.
    pub status: String,
    /// It was asked to stop.
    pub expected: bool,
}

/// One supervised process, as `orionctl status` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub name: ProcessName,
    pub state: ProcessState,
    pub pid: Option<u32>,
    pub uptime_s: Option<f64>,
    /// Starts after the first.
    pub restarts: u32,
    /// Failed starts in a row (reset once one runs long enough).
    pub retries: u32,
    /// supervisorctl's description column: `pid 12, uptime 0:01:02`, or why it is not running.
    pub description: String,
    pub last_exit: Option<ExitInfo>,
}

/// Requests oriond refused because the connection's role may not send them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthorityReport {
    /// Per role (`operator`, `control`, `capture`, `detector`...).
    pub refused: BTreeMap<String, u64>,
    pub refused_total: u64,
    pub last_refused: Option<String>,
    /// Messages that arrived from a connection oriond had let go (not carried out).
    pub from_connections_let_go: u64,
}

/// oriond itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriondStatus {
    pub pid: u32,
    pub uptime_s: f64,
    pub version: String,
    /// Open connections on its socket.
    pub connections: usize,
    pub authority: AuthorityReport,
    /// Command request ids kept to recognise a repeat.
    pub commands_remembered: usize,
    /// Repeats answered from memory instead of applied again.
    pub commands_repeated_not_applied: u64,
}

/// How the last capture change (rate, size) was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverMode {
    /// A successor streamed before the old capture stopped: no gap in frames.
    MakeBeforeBreak,
    /// The capture was restarted (see `why`).
    Restart,
}

/// `capture_handover` in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    pub mode: HandoverMode,
    /// Why it was a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The successor held its first frame this long after its start (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_after_ms: Option<u64>,
    /// The successor became the writer this long after its start (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_after_ms: Option<u64>,
    pub at_unix_ms: u64,
}

impl Handover {
    pub fn restart(why: impl Into<String>, at_unix_ms: u64) -> Self {
        Self {
            mode: HandoverMode::Restart,
            why: Some(why.into()),
            held_after_ms: None,
            switched_after_ms: None,
            at_unix_ms,
        }
    }
}

/// `snapshots` in the status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotCounters {
    pub taken: u64,
    pub failed: u64,
    pub in_progress: usize,
    pub last_error: Option<String>,
    /// A snapshot is published when occupancy changes.
    pub on_occupancy_change: bool,
}

/// The standby detector running now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandbyNow {
    pub pid: u32,
    /// Its worker is loaded: it would take over a detector death at once.
    pub ready: bool,
    pub ready_after_ms: Option<u64>,
    pub age_s: f64,
}

/// `detector_standby` in the status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyStatus {
    pub enabled: bool,
    pub current: Option<StandbyNow>,
    /// Detector deaths a standby took over.
    pub takeovers: u64,
    /// Why the last standby was dropped (or could not start), if one was.
    pub last_dropped: Option<String>,
}

/// `stand_ins` in the status: whether the box affords the spare worker and the standby
/// detector now (oriond's memory gate, `[memory]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandInsStatus {
    /// Why they are shed now (`memory`, `memory pressure`); None: they may run.
    pub shed: Option<String>,
    /// When the verdict last changed, RFC 3339.
    pub since: Option<String>,
    /// The last sample: MB this room could still take, and PSI `some avg10` (percent).
    pub available_mb: Option<u64>,
    pub pressure_pct: Option<f64>,
    /// Times they were shed since oriond started.
    pub sheds: u64,
}

/// `measured` in the status: what this box measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Mean inference time, ms, per size letter and input size.
    #[serde(deserialize_with = "input_sizes")]
    pub inference_ms: BTreeMap<String, BTreeMap<u32, f64>>,
    /// Results were interrupted this long when the capture last switched (ms).
    pub capture_switch_gap_ms: Option<f64>,
    /// The interval between results just before that switch (ms).
    pub steady_interval_ms: Option<f64>,
}

/// JSON object keys are strings; inside a tagged [`crate::Message`] serde cannot turn them
/// back into numbers on its own.
fn input_sizes<'de, D>(d: D) -> Result<BTreeMap<String, BTreeMap<u32, f64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = BTreeMap::<String, BTreeMap<String, f64>>::deserialize(d)?;
    raw.into_iter()
        .map(|(size, times)| {
            let times = times
                .into_iter()
                .map(|(input, ms)| {
                    let input = input.parse().map_err(|_| {
                        serde::de::Error::custom(format!("input size {input:?} is not a number"))
                    })?;
                    Ok((input, ms))
                })
                .collect::<Result<_, D::Error>>()?;
            Ok((size, times))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub orion: String,
}

/// orion-control's counters (`mqtt` in the retained MQTT status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MqttCounters {
    pub connected: bool,
    /// The broker node in use (`host:port`), or the one being tried.
    #[serde(default)]
    pub broker: Option<String>,
    pub connects: u64,
    /// Connections made to another node than the one before (`[mqtt] hosts`).
    #[serde(default)]
    pub failovers: u64,
    /// Times the broker gave this room's session to another client with the same client
    /// id (MQTT 5 says so; under 3.1.1: the broker closed the connection 3 times in 2 min).
    #[serde(default)]
    pub session_takeovers: u64,
    /// The groups this room takes commands for (`[mqtt] groups`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Commands taken from a group topic (`{prefix}/control/group/{group}`).
    #[serde(default)]
    pub group_commands: u64,
    pub commands: u64,
    pub commands_rejected: u64,
    pub commands_expired: u64,
    /// Refused by `[mqtt] allowed_commands`.
    pub commands_refused: u64,
    /// Sent with the retain flag, so never applied.
    pub commands_retained: u64,
    /// MQTT 3.1.1: packets too large to read (over 4 MiB), and with each the broker's
    /// queue for this client, discarded.
    pub unreadable_discarded: u64,
    /// Forwarded to oriond and never answered in time.
    pub commands_timed_out: u64,
    pub commands_redelivered: u64,
    /// Forwarded to oriond, not answered yet.
    pub commands_in_flight: usize,
    pub detections_published: u64,
    pub detections_dropped: u64,
    pub acks_dropped: u64,
    pub snapshots_published: u64,
    /// Not queued for the broker (disconnected, or the queue was full).
    pub snapshots_dropped: u64,
    /// Care events published (QoS 1) and not queued for the broker.
    #[serde(default)]
    pub events_published: u64,
    #[serde(default)]
    pub events_dropped: u64,
    pub last_error: Option<String>,
}

/// Who took the room dark on purpose (an allowed MQTT `shutdown`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoppedBy {
    /// `mqtt`.
    pub by: String,
    pub request_id: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub instance_id: InstanceId,
    pub room_id: String,
    pub oriond: OriondStatus,
    pub processes: Vec<ProcessStatus>,
    /// The capture's last report.
    pub stream: Option<CaptureStatus>,
    pub capture_handover: Option<Handover>,
    pub occupancy: Occupancy,
    /// Each zone's occupancy, in the order of `desired.zones`.
    #[serde(default)]
    pub zones: Vec<crate::occupancy::ZoneOccupancy>,
    pub snapshots: SnapshotCounters,
    /// The detector's last report.
    pub detector: Option<DetectorStatus>,
    pub detector_standby: StandbyStatus,
    #[serde(default)]
    pub stand_ins: StandInsStatus,
    pub desired: Desired,
    pub measured: Measured,
    pub versions: Versions,
    /// Model sizes in `detector.model_dir` and their input sizes: only in an answer to
    /// `get_status` (read on request, not with every status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_on_disk: Option<BTreeMap<String, Vec<u32>>>,
    /// Added by orion-control to the retained MQTT status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttCounters>,
    /// Added by orion-control: when it was published, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Added by orion-control when an MQTT `shutdown` stopped Orion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<StoppedBy>,
}

impl Status {
    pub fn process(&self, name: ProcessName) -> Option<&ProcessStatus> {
        self.processes.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::capture::StreamState;
    use crate::detector::DetectorState;

    #[test]
    fn state_names_are_their_wire_names() {
        for s in ProcessState::ALL {
            assert_eq!(json!(s), s.as_str());
        }
        let streams = [
            StreamState::Connecting,
            StreamState::Running,
            StreamState::Stalled,
            StreamState::Reconnecting,
            StreamState::Standby,
        ];
        for s in streams {
            assert_eq!(json!(s), s.as_str());
        }
        let detectors = [
            DetectorState::StartingWorker,
            DetectorState::Paused,
            DetectorState::Running,
            DetectorState::Standby,
        ];
        for s in detectors {
            assert_eq!(json!(s), s.as_str());
        }
    }

    /// The document as oriond sends it just after a start (no report from a child yet, a
    /// restart recorded): read and written back unchanged.
    #[test]
    fn a_status_reads_and_writes_back_unchanged() {
        let doc = json!({
            "instance_id": "node-001",
            "room_id": "room-1",
            "oriond": {
                "pid": 10, "uptime_s": 1.5, "version": "0.1.0", "connections": 3,
                "authority": {"refused": {"capture": 1}, "refused_total": 1,
                              "last_refused": "no", "from_connections_let_go": 0},
                "commands_remembered": 2, "commands_repeated_not_applied": 0
            },
            "processes": [{
                "name": "capture", "state": "BACKOFF", "pid": null, "uptime_s": null,
                "restarts": 1, "retries": 1, "description": "exited: exit 1",
                "last_exit": {"at_unix_us": 2, "reaped_unix_us": 1, "status": "exit 1",
                              "expected": false}
            }],
            "stream": null,
            "capture_handover": {"mode": "restart", "why": "the stream is unknown, not running",
                                 "at_unix_ms": 3},
            "occupancy": {"occupied": null, "count": 0, "since": null, "last_seen": null,
                          "frame_seq": null, "reason": "the capture is BACKOFF",
                          "coverage": null, "last_full_look": null},
            "snapshots": {"taken": 0, "failed": 0, "in_progress": 0, "last_error": null,
                          "on_occupancy_change": false},
            "detector": null,
            "detector_standby": {"enabled": true, "current": {"pid": 12, "ready": false,
                                 "ready_after_ms": null, "age_s": 0.5},
                                 "takeovers": 0, "last_dropped": null},
            "stand_ins": {"shed": "memory", "since": "2026-12-07T20:00:00.000Z",
                          "available_mb": 310, "pressure_pct": 0.5, "sheds": 1},
            "desired": {"rate_hz": 5.0, "model_size": "n", "rois": null, "paused": false,
                        "auto_focus": false,
                        "auto_focus_params": crate::focus::Params::default(), "zones": []},
            "zones": [],
            "measured": {"inference_ms": {"n": {"640": 51.0}}, "capture_switch_gap_ms": null,
                         "steady_interval_ms": null},
            "versions": {"orion": "0.1.0"}
        });
        let status: Status = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(status.process(ProcessName::Capture).unwrap().restarts, 1);
        assert_eq!(status.measured.inference_ms["n"][&640], 51.0);
        assert_eq!(json!(status), doc);
        // The same on oriond's socket, inside a tagged message.
        let message = crate::Message::Status {
            status: Box::new(status.clone()),
        };
        let text = serde_json::to_string(&message).unwrap();
        match crate::message::decode(text.as_bytes()).unwrap() {
            crate::Frame::Message(m) => assert_eq!(*m, message),
            other => panic!("{other:?}"),
        }
        // orion-control's additions appear only when set.
        let mut published = status;
        published.mqtt = Some(MqttCounters::default());
        assert_eq!(json!(published)["mqtt"]["connects"], 0);
    }
}

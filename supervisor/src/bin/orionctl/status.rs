//! `orionctl status`: one line per process, with what it adds to a RUNNING process's
//! description when its work is not being done (the camera stream, the detector; exit 5
//! then) and what stands by to replace it.

use anyhow::Result;
use orion_protocol::status::{ProcessStatus, StandInsStatus, StandbyStatus};
use orion_protocol::{Action, CaptureStatus, DetectorState, ProcessState, Status, StreamState};
use serde_json::json;

use super::{Client, NOT_DETECTING, NOT_RUNNING, UNKNOWN_NAME};

impl Client {
    pub(super) fn status(&mut self, names: &[String]) -> Result<u8> {
        let status = self.read_status(Action::ProcessStatus(None))?;
        let wanted: Vec<String> = if names.is_empty() || names.iter().any(|n| n == "all") {
            status
                .processes
                .iter()
                .map(|p| p.name.to_string())
                .collect()
        } else {
            names.to_vec()
        };
        let (mut unknown, mut not_running, mut troubled) = (false, false, false);
        let mut shown = Vec::new();
        for name in &wanted {
            match find(&status, name) {
                Some(p) => {
                    let running = p.state == ProcessState::Running;
                    let note = running.then(|| trouble(name, &status)).flatten();
                    not_running |= !running;
                    troubled |= note.is_some();
                    shown.push(p.clone());
                    if !self.json {
                        let stand_in = (name == "detector")
                            .then(|| stand_in(&status.detector_standby, &status.stand_ins))
                            .flatten();
                        let description = [note, stand_in]
                            .into_iter()
                            .flatten()
                            .fold(p.description.clone(), |d, n| format!("{d}; {n}"));
                        println!("{:<12}{:<10}{}", name, p.state, description);
                    }
                }
                None => {
                    if !self.json {
                        println!("{name}: ERROR (no such process)");
                    }
                    unknown = true;
                }
            }
        }
        if self.json {
            println!("{}", json!({"processes": shown}));
        }
        // The worst first: a name oriond does not run, a process down, work not done.
        Ok(match (unknown, not_running, troubled) {
            (true, _, _) => UNKNOWN_NAME,
            (_, true, _) => NOT_RUNNING,
            (_, _, true) => NOT_DETECTING,
            _ => 0,
        })
    }
}

pub(super) fn find<'a>(status: &'a Status, name: &str) -> Option<&'a ProcessStatus> {
    status.processes.iter().find(|p| p.name.to_string() == name)
}

/// What is wrong with a RUNNING process's work, for the description column: the camera
/// stream of `capture`, the detector's state. `None` when it is healthy or has not
/// reported yet.
pub fn trouble(name: &str, status: &Status) -> Option<String> {
    match name {
        "capture" => status.stream.as_ref().and_then(stream_trouble),
        "detector" => status
            .detector
            .as_ref()
            .and_then(|d| detector_trouble(d.state)),
        _ => None,
    }
}

fn stream_trouble(stream: &CaptureStatus) -> Option<String> {
    if stream.state == StreamState::Running {
        return None;
    }
    let mut note = format!("camera {}", stream.state.as_str());
    if let Some(ms) = stream.retry_in_ms {
        note += &format!(" (retry in {:.0} s)", (ms as f64 / 1000.0).ceil());
    }
    if let Some(e) = &stream.last_error {
        let e: String = e.chars().take(120).collect();
        note += &format!(": {e}");
    }
    Some(note)
}

fn detector_trouble(state: DetectorState) -> Option<String> {
    match state {
        DetectorState::Running => None,
        DetectorState::StartingWorker => Some("detector starting its worker".into()),
        other => Some(format!("detector {}", other.as_str())),
    }
}

/// What stands by to replace the detector when it dies, for the description column; not
/// a trouble. Shed for memory: `spare: shed, memory; standby: shed, memory`.
pub fn stand_in(standby: &StandbyStatus, stand_ins: &StandInsStatus) -> Option<String> {
    if let Some(why) = &stand_ins.shed {
        return Some(match standby.enabled {
            true => format!("spare: shed, {why}; standby: shed, {why}"),
            false => format!("spare: shed, {why}"),
        });
    }
    let current = standby.current.as_ref()?;
    let pid = current.pid;
    Some(match current.ready {
        true => format!("standby pid {pid} loaded"),
        false => format!("standby pid {pid} loading"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use orion_protocol::status::StandbyNow;

    fn standby(pid: u32, ready: bool) -> StandbyStatus {
        StandbyStatus {
            current: Some(StandbyNow {
                pid,
                ready,
                ready_after_ms: None,
                age_s: 1.0,
            }),
            ..StandbyStatus::default()
        }
    }

    fn stream(state: StreamState, retry_in_ms: Option<u64>, error: Option<&str>) -> CaptureStatus {
        CaptureStatus {
            state,
            fps: 0.0,
            frames: 0,
            reconnects: 0,
            last_error: error.map(String::from),
            retry_in_ms,
            source: "rtsp://cam/".into(),
            width: 640,
            height: 360,
            rate_hz: 5.0,
            last_seq: 0,
            epoch: 1,
            sandbox: None,
        }
    }

    #[test]
    fn the_detector_line_names_its_standby() {
        assert_eq!(
            stand_in(&standby(42, true), &StandInsStatus::default()).as_deref(),
            Some("standby pid 42 loaded")
        );
        assert_eq!(
            stand_in(&standby(7, false), &StandInsStatus::default()).as_deref(),
            Some("standby pid 7 loading")
        );
        let none = StandInsStatus::default();
        assert_eq!(stand_in(&StandbyStatus::default(), &none), None);
        let shed = StandInsStatus {
            shed: Some("memory".into()),
            ..none
        };
        let on = StandbyStatus {
            enabled: true,
            ..StandbyStatus::default()
        };
        assert_eq!(
            stand_in(&on, &shed).as_deref(),
            Some("spare: shed, memory; standby: shed, memory")
        );
        assert_eq!(
            stand_in(&StandbyStatus::default(), &shed).as_deref(),
            Some("spare: shed, memory")
        );
    }

    #[test]
    fn the_description_says_what_a_running_process_does_not_do() {
        assert_eq!(
            stream_trouble(&stream(StreamState::Running, None, None)),
            None
        );
        assert_eq!(detector_trouble(DetectorState::Running), None);
        let down = stream(
            StreamState::Reconnecting,
            Some(7400),
            Some("Could not open resource"),
        );
        assert_eq!(
            stream_trouble(&down).as_deref(),
            Some("camera reconnecting (retry in 8 s): Could not open resource")
        );
        assert_eq!(
            detector_trouble(DetectorState::Paused).as_deref(),
            Some("detector paused")
        );
        assert_eq!(
            stream_trouble(&stream(StreamState::Connecting, None, None)).as_deref(),
            Some("camera connecting")
        );
        assert_eq!(
            detector_trouble(DetectorState::StartingWorker).as_deref(),
            Some("detector starting its worker")
        );
    }
}

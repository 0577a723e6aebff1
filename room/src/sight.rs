//! Whether Orion is looking at the room now. Occupancy may only be concluded from frames
//! that were judged: while detection is paused, a process is not running or the camera is
//! not streaming, the room's state is unknown, with the reason an operator reads.

use std::fmt;

use orion_protocol::{ProcessState, StreamState};

/// What the room's observers are doing, as the supervisor knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observers<'a> {
    /// The operator paused detection.
    pub paused: bool,
    /// The detector's supervision state; `None`: not managed.
    pub detector: Option<ProcessState>,
    /// The capture's supervision state; `None`: not managed.
    pub capture: Option<ProcessState>,
    /// The stream's state as the capture last reported it, and its last error; `None`: no
    /// report yet.
    pub stream: Option<(StreamState, Option<&'a str>)>,
}

/// Why no frame is being judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blind {
    Paused,
    /// The detector is in this supervision state (not RUNNING).
    Detector(ProcessState),
    /// The capture is in this supervision state (not RUNNING).
    Capture(ProcessState),
    /// The camera stream is in this state (`None`: not reported yet), with the capture's
    /// last error.
    Camera {
        state: Option<StreamState>,
        error: Option<String>,
    },
}

impl fmt::Display for Blind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blind::Paused => f.write_str("paused: detection is off"),
            Blind::Detector(state) => write!(f, "the detector is {state}"),
            Blind::Capture(state) => write!(f, "the capture is {state}"),
            Blind::Camera { state, error } => {
                let state = state.map_or("unknown", StreamState::as_str);
                match error {
                    Some(e) => write!(f, "camera {state}: {e}"),
                    None => write!(f, "camera {state}"),
                }
            }
        }
    }
}

/// Why the room is not being looked at, if it is not: the first of paused, the detector,
/// the capture, the stream.
pub fn blind(o: &Observers) -> Option<Blind> {
    if o.paused {
        return Some(Blind::Paused);
    }
    if let Some(state) = o.detector.filter(|s| *s != ProcessState::Running) {
        return Some(Blind::Detector(state));
    }
    if let Some(state) = o.capture.filter(|s| *s != ProcessState::Running) {
        return Some(Blind::Capture(state));
    }
    match o.stream {
        Some((StreamState::Running, _)) => None,
        Some((state, error)) => Some(Blind::Camera {
            state: Some(state),
            error: error.map(str::to_string),
        }),
        None => Some(Blind::Camera {
            state: None,
            error: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCHING: Observers = Observers {
        paused: false,
        detector: Some(ProcessState::Running),
        capture: Some(ProcessState::Running),
        stream: Some((StreamState::Running, None)),
    };

    #[test]
    fn the_room_is_seen_only_when_everything_runs() {
        assert_eq!(blind(&WATCHING), None);
        let paused = Observers {
            paused: true,
            ..WATCHING
        };
        assert_eq!(
            blind(&paused).unwrap().to_string(),
            "paused: detection is off"
        );
        let detector = Observers {
            detector: Some(ProcessState::Backoff),
            capture: Some(ProcessState::Stopped),
            ..WATCHING
        };
        assert_eq!(
            blind(&detector).unwrap().to_string(),
            "the detector is BACKOFF"
        );
        let capture = Observers {
            capture: Some(ProcessState::Starting),
            ..WATCHING
        };
        assert_eq!(
            blind(&capture).unwrap().to_string(),
            "the capture is STARTING"
        );
        let camera = Observers {
            stream: Some((StreamState::Reconnecting, Some("end of stream"))),
            ..WATCHING
        };
        assert_eq!(
            blind(&camera).unwrap().to_string(),
            "camera reconnecting: end of stream"
        );
        let unreported = Observers {
            stream: None,
            ..WATCHING
        };
        assert_eq!(blind(&unreported).unwrap().to_string(), "camera unknown");
        // Not managed (disabled in the config) is no reason to be blind.
        let unmanaged = Observers {
            detector: None,
            capture: None,
            ..WATCHING
        };
        assert_eq!(blind(&unmanaged), None);
    }
}

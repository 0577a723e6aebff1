//! Whether Orion is looking at the room now. Occupancy may only be concluded from frames
//! that were judged: while detection is paused, a process is not running or the camera is
//! not streaming, the room's state is unknown, with the reason an operator reads.

use std::fmt;

/// What the room's observers are doing, as the supervisor knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observers<'a> {
    /// The operator paused detection.
    pub paused: bool,
    /// The detector's supervision state (`RUNNING`, `BACKOFF`...); `None`: not managed.
    pub detector: Option<&'a str>,
    /// The capture's supervision state; `None`: not managed.
    pub capture: Option<&'a str>,
    /// The stream's state as the capture last reported it (`running`, `reconnecting`...),
    /// and its last error; `None`: no report yet.
    pub stream: Option<(&'a str, Option<&'a str>)>,
}

/// Why no frame is being judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blind {
    Paused,
    /// The detector is in this supervision state (not RUNNING).
    Detector(String),
    /// The capture is in this supervision state (not RUNNING).
    Capture(String),
    /// The camera stream is in this state, with the capture's last error.
    Camera {
        state: String,
        error: Option<String>,
    },
}

impl fmt::Display for Blind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blind::Paused => f.write_str("paused: detection is off"),
            Blind::Detector(state) => write!(f, "the detector is {state}"),
            Blind::Capture(state) => write!(f, "the capture is {state}"),
            Blind::Camera { state, error } => match error {
                Some(e) => write!(f, "camera {state}: {e}"),
                None => write!(f, "camera {state}"),
            },
        }
    }
}

/// Why the room is not being looked at, if it is not: the first of paused, the detector,
/// the capture, the stream.
pub fn blind(o: &Observers) -> Option<Blind> {
    if o.paused {
        return Some(Blind::Paused);
    }
    if let Some(state) = o.detector.filter(|s| *s != "RUNNING") {
        return Some(Blind::Detector(state.to_string()));
    }
    if let Some(state) = o.capture.filter(|s| *s != "RUNNING") {
        return Some(Blind::Capture(state.to_string()));
    }
    match o.stream {
        Some(("running", _)) => None,
        Some((state, error)) => Some(Blind::Camera {
            state: state.to_string(),
            error: error.map(str::to_string),
        }),
        None => Some(Blind::Camera {
            state: "unknown".into(),
            error: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCHING: Observers = Observers {
        paused: false,
        detector: Some("RUNNING"),
        capture: Some("RUNNING"),
        stream: Some(("running", None)),
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
            detector: Some("BACKOFF"),
            capture: Some("STOPPED"),
            ..WATCHING
        };
        assert_eq!(
            blind(&detector).unwrap().to_string(),
            "the detector is BACKOFF"
        );
        let capture = Observers {
            capture: Some("STARTING"),
            ..WATCHING
        };
        assert_eq!(
            blind(&capture).unwrap().to_string(),
            "the capture is STARTING"
        );
        let camera = Observers {
            stream: Some(("reconnecting", Some("end of stream"))),
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

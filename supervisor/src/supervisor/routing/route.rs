//! Where a request goes, decided from the situation alone (pure): refused, answered by
//! oriond from its own state, a capture replacement, a supervisor verb, or the detector's —
//! sent now, kept for when it is back, or refused while it is down. `routing` carries the
//! route out.

use orion_config::Mqtt;
use orion_protocol::command::{AckError, ErrorKind};
use orion_protocol::{Action, ProcessName, RateHz};

use crate::lifecycle::State;

/// What the router looks at.
#[derive(Debug, Clone, Copy)]
pub(in crate::supervisor) struct Situation<'a> {
    /// The request came from orion-control: `[mqtt] allowed_commands` applies.
    pub from_control: Option<&'a Mqtt>,
    pub shutting_down: bool,
    /// The children the config manages.
    pub managed: &'a [ProcessName],
    pub capture: Option<State>,
    /// The rate in the desired state.
    pub rate: RateHz,
    pub detector: Option<State>,
    /// The detector reported ready and is connected: it can be asked now.
    pub detector_reachable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(in crate::supervisor) enum Route {
    /// Not carried out: why.
    Refuse(AckError),
    /// Answered from oriond's own state.
    Query,
    /// A setting of the room logic, which oriond hosts (zones).
    Room,
    /// The rate asked for is the rate, and the capture runs.
    RateUnchanged,
    /// A new rate: the capture is replaced, the ack waits for it to run.
    RateChange,
    Shutdown,
    Reload,
    /// A supervisor verb on a managed child.
    Process(ProcessName),
    /// Sent to the detector now; its ack settles it.
    Detector,
    /// A setting kept in the desired state for when the detector is back (`detector`:
    /// its state now).
    Defer {
        detector: &'static str,
    },
}

/// Settings that can wait for a detector that is down: kept in the desired state and
/// applied when it is back. A model load or a question needs the detector itself.
pub(in crate::supervisor) fn deferrable(action: &Action) -> bool {
    matches!(
        action,
        Action::Pause
            | Action::Resume
            | Action::SetRois(_)
            | Action::ClearRois
            | Action::SetAutoFocus(_)
            | Action::EnableAutoFocus
            | Action::DisableAutoFocus
    )
}

/// Where `action` goes in situation `s`.
pub(in crate::supervisor) fn route(s: &Situation, action: &Action) -> Route {
    // orion-control checks this too; the owner of the processes does not rely on it.
    if let Some(why) = s.from_control.and_then(|mqtt| mqtt.refuses(action.name())) {
        return Route::Refuse(AckError::new(ErrorKind::Refused, why));
    }
    // Shutting down is final: nothing may start, restart or change a child now.
    if s.shutting_down && !action.is_query() && *action != Action::Shutdown {
        let why = format!(
            "oriond is shutting down; {} was not carried out",
            action.name()
        );
        return Route::Refuse(AckError::new(ErrorKind::ShuttingDown, why));
    }
    match action {
        Action::GetStatus
        | Action::ProcessStatus(None)
        | Action::GetRois
        | Action::GetSnapshot(_)
        | Action::GetAutoFocus
        | Action::GetZones => Route::Query,
        Action::SetZones(_) => Route::Room,
        Action::SetRate(rate) if *rate == s.rate && s.capture == Some(State::Running) => {
            Route::RateUnchanged
        }
        Action::SetRate(_) => Route::RateChange,
        Action::Shutdown => Route::Shutdown,
        Action::ReloadConfig => Route::Reload,
        Action::RestartProcess(name)
        | Action::ProcessStatus(Some(name))
        | Action::StartProcess(name)
        | Action::StopProcess(name)
        | Action::TailProcess { name, .. } => {
            if s.managed.contains(name) {
                Route::Process(*name)
            } else {
                Route::Refuse(AckError::new(
                    ErrorKind::UnknownProcess,
                    format!("params.name: {name} is not managed (disabled in the config)"),
                ))
            }
        }
        action => {
            let state = s.detector.map_or("not managed", State::as_str);
            if s.detector_reachable {
                Route::Detector
            } else if deferrable(action) && s.detector.is_some() {
                Route::Defer { detector: state }
            } else {
                Route::Refuse(AckError::new(
                    ErrorKind::Unavailable,
                    format!("the detector is {state}; try again when it is RUNNING"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALL: [ProcessName; 4] = ProcessName::START_ORDER;

    fn rate(hz: f64) -> RateHz {
        RateHz::new(hz).unwrap()
    }

    fn running<'a>() -> Situation<'a> {
        Situation {
            from_control: None,
            shutting_down: false,
            managed: &ALL,
            capture: Some(State::Running),
            rate: rate(2.0),
            detector: Some(State::Running),
            detector_reachable: true,
        }
    }

    fn kind(route: Route) -> Option<ErrorKind> {
        match route {
            Route::Refuse(e) => Some(e.kind),
            _ => None,
        }
    }

    #[test]
    fn only_settings_wait_for_a_detector_that_is_down() {
        assert!(deferrable(&Action::Pause));
        assert!(deferrable(&Action::ClearRois));
        assert!(deferrable(&Action::EnableAutoFocus));
        assert!(!deferrable(&Action::GetStatus));
        assert!(!deferrable(&Action::Shutdown));
        assert!(!deferrable(&Action::ReloadConfig));
        let down = Situation {
            detector: Some(State::Backoff),
            detector_reachable: false,
            ..running()
        };
        assert_eq!(route(&running(), &Action::Pause), Route::Detector);
        assert_eq!(
            route(&down, &Action::Pause),
            Route::Defer {
                detector: "BACKOFF"
            }
        );
        assert_eq!(
            kind(route(&down, &Action::GetAutoFocusStats)),
            Some(ErrorKind::Unavailable)
        );
        let unmanaged = Situation {
            detector: None,
            ..down
        };
        assert_eq!(
            kind(route(&unmanaged, &Action::Pause)),
            Some(ErrorKind::Unavailable)
        );
    }

    #[test]
    fn shutting_down_answers_questions_and_refuses_changes() {
        let s = Situation {
            shutting_down: true,
            ..running()
        };
        assert_eq!(route(&s, &Action::GetStatus), Route::Query);
        assert_eq!(route(&s, &Action::Shutdown), Route::Shutdown);
        for change in [
            Action::Pause,
            Action::ReloadConfig,
            Action::SetRate(rate(5.0)),
            Action::StartProcess(ProcessName::Capture),
        ] {
            assert_eq!(
                kind(route(&s, &change)),
                Some(ErrorKind::ShuttingDown),
                "{change:?}"
            );
        }
    }

    #[test]
    fn mqtt_may_send_only_its_allowed_commands() {
        let mqtt = Mqtt::default();
        let s = Situation {
            from_control: Some(&mqtt),
            ..running()
        };
        assert_eq!(kind(route(&s, &Action::Shutdown)), Some(ErrorKind::Refused));
        assert_eq!(route(&s, &Action::Pause), Route::Detector);
        assert_eq!(
            route(&running(), &Action::Shutdown),
            Route::Shutdown,
            "orionctl may"
        );
    }

    #[test]
    fn a_rate_change_replaces_the_capture_unless_it_is_the_rate_already() {
        let s = running();
        assert_eq!(route(&s, &Action::SetRate(rate(2.0))), Route::RateUnchanged);
        assert_eq!(route(&s, &Action::SetRate(rate(5.0))), Route::RateChange);
        let stopped = Situation {
            capture: Some(State::Stopped),
            ..s
        };
        assert_eq!(
            route(&stopped, &Action::SetRate(rate(2.0))),
            Route::RateChange,
            "the same rate starts a stopped capture"
        );
    }

    #[test]
    fn verbs_on_a_child_the_config_does_not_manage_are_refused() {
        let managed = [ProcessName::Detector, ProcessName::Capture];
        let s = Situation {
            managed: &managed,
            ..running()
        };
        assert_eq!(
            route(&s, &Action::RestartProcess(ProcessName::Capture)),
            Route::Process(ProcessName::Capture)
        );
        assert_eq!(
            kind(route(&s, &Action::StopProcess(ProcessName::Broker))),
            Some(ErrorKind::UnknownProcess)
        );
    }
}

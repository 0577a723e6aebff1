//! What a connection to oriond's socket may send, by who is on it. Pure: the role comes
//! from `crate::peers` (the hello, checked against the pid oriond spawned, and whether the
//! peer descends from oriond); the supervisor asks here before it acts on anything.
//!
//! | role | requests | messages |
//! |---|---|---|
//! | operator (orionctl: a process oriond did not start, let in by the socket's 0660) | all | a hello (checked against the pid oriond spawned) |
//! | orion-control | the MQTT catalog (never the supervisor verbs; `allowed_commands` is checked by the router) | ready |
//! | orion-capture (and its successor) | none | ready, capture status |
//! | orion-detector (and its standby) | none | ready, detector status, detections, acks of the requests oriond sent on this connection |
//! | a process oriond started, before its hello (or a second connection of one) | none | a hello |
//!
//! A decoder compromised by a camera's stream therefore cannot stop, shut down or reload
//! anything, nor answer for the detector, whichever connection it uses.

use std::collections::{BTreeMap, HashSet};

use orion_protocol::ProcessName;
use orion_protocol::command::Action;
use orion_protocol::message::Message;
use orion_protocol::status::AuthorityReport;

use crate::events::ConnId;

/// Who is on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A process oriond did not start (orionctl, a script of the operator's).
    Operator,
    /// A process oriond started, or one of theirs, that has not said hello on this
    /// connection.
    Descendant,
    /// A child, or its understudy, after its hello.
    Child(ProcessName),
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Descendant => "descendant",
            Role::Child(name) => name.as_str(),
        }
    }
}

/// Whether `role` may ask for `action`; why not.
pub fn may_request(role: Role, action: &Action) -> Result<(), String> {
    match role {
        Role::Operator => Ok(()),
        Role::Child(ProcessName::Control) if action.is_local_only() => Err(format!(
            "{} is a supervisor verb (orionctl only), not an MQTT command",
            action.name()
        )),
        Role::Child(ProcessName::Control) => Ok(()),
        other => Err(format!(
            "{} may not send commands (asked for {})",
            describe(other),
            action.name()
        )),
    }
}

/// Whether `role` may send `message`; why not.
pub fn may_send(role: Role, message: &Message) -> Result<(), String> {
    let allowed = match message {
        Message::Hello { .. } => matches!(role, Role::Operator | Role::Descendant),
        Message::Ready => matches!(role, Role::Child(_)),
        Message::CaptureStatus(_) => role == Role::Child(ProcessName::Capture),
        Message::ControlStatus(_) => role == Role::Child(ProcessName::Control),
        Message::DetectorStatus(_) | Message::Detection { .. } | Message::Ack(_) => {
            role == Role::Child(ProcessName::Detector)
        }
        // oriond's own messages to its children: nobody sends them to oriond.
        Message::Status { .. }
        | Message::Occupancy { .. }
        | Message::ZoneOccupancy { .. }
        | Message::Event { .. }
        | Message::Snapshot { .. }
        | Message::TakeOver
        | Message::StandIns { .. } => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "{} may not send {}",
            describe(role),
            message_kind(message)
        ))
    }
}

fn describe(role: Role) -> String {
    match role {
        Role::Operator => "a connection that said no hello".into(),
        Role::Descendant => "a process oriond started, on a connection without its hello".into(),
        Role::Child(name) => format!("the {name}"),
    }
}

fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "a second hello",
        Message::Ack(_) => "acks",
        Message::Ready => "ready",
        Message::CaptureStatus(_) => "capture status",
        Message::ControlStatus(_) => "control status",
        Message::DetectorStatus(_) => "detector status",
        Message::Detection { .. } => "detections",
        Message::Status { .. } => "status",
        Message::Occupancy { .. } | Message::ZoneOccupancy { .. } => "occupancy",
        Message::Event { .. } => "events",
        Message::Snapshot { .. } => "snapshots",
        Message::TakeOver => "take_over",
        Message::StandIns { .. } => "stand_ins",
    }
}

/// Refusals counted per role for the status, each connection's first one logged.
#[derive(Debug, Default)]
pub struct Refusals {
    by_role: BTreeMap<&'static str, u64>,
    /// Messages that arrived from a connection oriond had let go (not carried out).
    pub from_let_go: u64,
    last: Option<String>,
    logged: HashSet<ConnId>,
}

impl Refusals {
    /// Counts one refusal on `conn`; true when it is the connection's first (log it).
    pub fn record(&mut self, conn: ConnId, role: Role, why: &str) -> bool {
        *self.by_role.entry(role.as_str()).or_default() += 1;
        self.last = Some(why.to_string());
        self.logged.insert(conn)
    }

    /// Forgets a closed connection.
    pub fn closed(&mut self, conn: ConnId) {
        self.logged.remove(&conn);
    }

    pub fn report(&self) -> AuthorityReport {
        AuthorityReport {
            refused: self
                .by_role
                .iter()
                .map(|(role, n)| (role.to_string(), *n))
                .collect(),
            refused_total: self.by_role.values().sum(),
            last_refused: self.last.clone(),
            from_connections_let_go: self.from_let_go,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_protocol::command::{Ack, AckError, ErrorKind};

    const CHILDREN: [ProcessName; 3] = [
        ProcessName::Capture,
        ProcessName::Detector,
        ProcessName::Broker,
    ];

    #[test]
    fn only_operators_and_control_may_command_and_control_only_the_mqtt_catalog() {
        for action in [Action::Shutdown, Action::ReloadConfig, Action::Pause] {
            assert!(may_request(Role::Operator, &action).is_ok());
            assert!(may_request(Role::Descendant, &action).is_err());
            for name in CHILDREN {
                assert!(may_request(Role::Child(name), &action).is_err(), "{name}");
            }
        }
        let control = Role::Child(ProcessName::Control);
        assert!(may_request(control, &Action::Pause).is_ok());
        assert!(
            may_request(control, &Action::Shutdown).is_ok(),
            "allowed_commands decides"
        );
        for verb in [
            Action::StopProcess(ProcessName::Capture),
            Action::StartProcess(ProcessName::Capture),
            Action::ReloadConfig,
            Action::ProcessStatus(None),
        ] {
            let why = may_request(control, &verb).unwrap_err();
            assert!(why.contains("supervisor verb"), "{why}");
        }
    }

    #[test]
    fn each_child_sends_only_its_own_reports() {
        let ack = Message::Ack(Ack::new(
            "pause_inference",
            Some("oriond-1".into()),
            Err(AckError::new(ErrorKind::Failed, "forged")),
        ));
        let capture = Role::Child(ProcessName::Capture);
        let detector = Role::Child(ProcessName::Detector);
        let control = Role::Child(ProcessName::Control);
        assert!(may_send(detector, &ack).is_ok());
        for role in [capture, control, Role::Operator, Role::Descendant] {
            let why = may_send(role, &ack).unwrap_err();
            assert!(why.contains("acks"), "{why}");
        }
        let hello = Message::Hello {
            name: ProcessName::Capture,
            pid: 1,
        };
        assert!(may_send(Role::Descendant, &hello).is_ok());
        assert!(may_send(capture, &hello).is_err(), "one hello");
        for role in [capture, detector, control, Role::Operator] {
            assert!(may_send(role, &Message::TakeOver).is_err());
        }
        // Only a child that said hello says it is ready.
        for role in [capture, detector, control] {
            assert!(may_send(role, &Message::Ready).is_ok());
        }
        for role in [Role::Operator, Role::Descendant] {
            assert!(may_send(role, &Message::Ready).is_err());
        }
        // The MQTT counters come from orion-control only.
        let counters = Message::ControlStatus(Default::default());
        assert!(may_send(control, &counters).is_ok());
        for role in [capture, detector, Role::Operator, Role::Descendant] {
            let why = may_send(role, &counters).unwrap_err();
            assert!(why.contains("control status"), "{why}");
        }
    }

    #[test]
    fn refusals_are_counted_per_role_and_logged_once_per_connection() {
        let mut r = Refusals::default();
        let capture = Role::Child(ProcessName::Capture);
        assert!(r.record(7, capture, "a"));
        assert!(!r.record(7, capture, "b"));
        assert!(r.record(8, Role::Descendant, "c"));
        let report = r.report();
        assert_eq!(report.refused["capture"], 2);
        assert_eq!(report.refused_total, 3);
        assert_eq!(report.last_refused.as_deref(), Some("c"));
        r.closed(7);
        assert!(
            r.record(7, capture, "d"),
            "a new connection with a reused id"
        );
    }
}

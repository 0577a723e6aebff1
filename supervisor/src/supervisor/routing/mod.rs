//! Requests, from orionctl and orion-control, to the process that owns them, and one ack
//! back for each: the desired state's questions answered here, a rate change as a capture
//! restart, detector settings forwarded to the detector (committed to the desired state only
//! when it succeeded; kept for later when it is not running), supervisor verbs on the
//! children. An ack is sent before anything the command causes (status, saving). A repeated
//! MQTT request id is answered again, not applied twice (`crate::dedupe`).
//!
//! Where a request goes is decided by [`route::route`] (pure, unit-tested); this module
//! carries the route out and settles what is in flight.

use std::time::Duration;

use orion_protocol::command::{self, Ack, AckError, Command, ErrorKind, TailReport};
use orion_protocol::message::Message;
use orion_protocol::{Action, ProcessName};
use serde_json::{Value, json};

mod route;

use super::Supervisor;
use super::act::Act;
use crate::dedupe::{Begin, Dedupe};
use crate::desired::Desired;
use crate::events::{ConnId, Timer, after};
use crate::lifecycle::State;
use route::{Route, Situation};

const REQUEST_TIMEOUT: Duration = orion_protocol::timeouts::ORIOND_COMMAND;
const MODEL_TIMEOUT: Duration = orion_protocol::timeouts::ORIOND_MODEL_COMMAND;

/// Where and how to answer a request.
#[derive(Clone)]
pub(super) struct Reply {
    conn: ConnId,
    command: String,
    request_id: Option<String>,
    /// Set for MQTT commands with a request id (see `crate::dedupe`).
    dedupe: Option<String>,
}

impl Reply {
    pub(super) fn conn(&self) -> ConnId {
        self.conn
    }

    pub(super) fn request_id(&self) -> Option<&String> {
        self.request_id.as_ref()
    }
}

/// A request oriond sent to a child and awaits the ack of.
struct InFlight {
    reply: Option<Reply>,
    child: ProcessName,
    /// The connection it went out on: only an ack from there settles it.
    conn: ConnId,
    action: Action,
    /// Part of bringing a restarted child to the desired state.
    reapply: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    Running,
    Stopped,
}

impl Until {
    /// Whether a child reaching `reached` settles a wait, and if so whether it succeeded:
    /// a start fails on FATAL, or on STOPPED unless a restart follows the stop.
    fn settled_by(self, reached: State, restart_follows: bool) -> Option<bool> {
        match (self, reached) {
            (Until::Running, State::Running) => Some(true),
            (Until::Running, State::Fatal) => Some(false),
            (Until::Running, State::Stopped) if !restart_follows => Some(false),
            (Until::Stopped, State::Stopped | State::Fatal) => Some(true),
            _ => None,
        }
    }
}

const CHILD_REQUEST_PREFIX: &str = "oriond-";

/// The request id oriond gives its `id`th request to a child.
fn child_request_id(id: u64) -> String {
    format!("{CHILD_REQUEST_PREFIX}{id}")
}

/// The number back from a child's ack; `None` for an id oriond did not make.
fn parse_child_request_id(id: &str) -> Option<u64> {
    id.strip_prefix(CHILD_REQUEST_PREFIX)?.parse().ok()
}

/// A request answered when a child reaches a state.
struct Waiter {
    name: ProcessName,
    until: Until,
    reply: Reply,
    /// Desired state to restore if the child does not get there.
    rollback: Option<Desired>,
}

/// Requests in flight.
pub struct Requests {
    pending: std::collections::HashMap<u64, InFlight>,
    next: u64,
    waiters: Vec<Waiter>,
    pub(super) seen: Dedupe<Reply>,
    /// MQTT commands seen again and answered without being applied (waited for the first
    /// answer, or answered from memory): the soak compares them with acks sent twice.
    pub(super) repeats_recognized: u64,
}

impl Requests {
    pub fn new(window: Duration) -> Self {
        Self {
            pending: Default::default(),
            next: 1,
            waiters: Vec::new(),
            seen: Dedupe::new(window),
            repeats_recognized: 0,
        }
    }
}

fn unavailable(msg: String) -> AckError {
    AckError::new(ErrorKind::Unavailable, msg)
}

impl Supervisor {
    /// An error for a frame that is no request at all.
    pub(super) fn routing_reject(&mut self, conn: ConnId, why: String) {
        let ack = Ack::new("unknown", None, Err(AckError::bad_request(why)));
        self.registry.send(conn, &Message::Ack(ack));
    }

    pub(super) fn request(&mut self, conn: ConnId, cmd: Command) {
        let dedupe = cmd
            .request_id
            .as_ref()
            .filter(|id| id.starts_with(command::MQTT_ID_PREFIX))
            .cloned();
        let reply = Reply {
            conn,
            command: cmd.name.clone(),
            request_id: cmd.request_id.clone(),
            dedupe: dedupe.clone(),
        };
        if let Some(key) = &dedupe {
            match self
                .requests
                .seen
                .begin(key, reply.clone(), crate::dedupe::now_ms())
            {
                Begin::New => {}
                Begin::Waiting => {
                    self.requests.repeats_recognized += 1;
                    tracing::info!(
                        request_id = key,
                        "repeated request waits for the first one's answer"
                    );
                    return;
                }
                Begin::Answered(ack) => {
                    self.requests.repeats_recognized += 1;
                    tracing::info!(
                        request_id = key,
                        "repeated request answered again, not applied"
                    );
                    return self.registry.send(conn, &Message::Ack(ack));
                }
                Begin::Full => {
                    // Not remembered, so not answered as remembered either.
                    let reply = Reply {
                        dedupe: None,
                        ..reply
                    };
                    let why = format!(
                        "oriond remembers the last {} commands within mqtt.command_max_age_s to \
                         apply each once, and that many arrived; try again later",
                        crate::dedupe::MAX
                    );
                    return self.answer(&reply, Err(AckError::new(ErrorKind::Busy, why)));
                }
            }
        }
        let action = match cmd.action {
            Ok(a) => a,
            Err(e) => return self.answer(&reply, Err(e)),
        };
        let managed: Vec<ProcessName> = self.children.keys().copied().collect();
        let from_control = self.speaks_for(conn) == Some(ProcessName::Control);
        let situation = Situation {
            from_control: from_control.then_some(&self.config.mqtt),
            shutting_down: self.shutdown.is_some(),
            managed: &managed,
            capture: self.state_of(ProcessName::Capture),
            rate: self.desired.rate_hz,
            detector: self.state_of(ProcessName::Detector),
            detector_reachable: self
                .children
                .get(&ProcessName::Detector)
                .is_some_and(|c| c.ready)
                && self.child_conn(ProcessName::Detector).is_some(),
        };
        let route = route::route(&situation, &action);
        self.carry_out_route(conn, reply, action, route);
    }

    /// Carries out what [`route::route`] decided for `action`.
    fn carry_out_route(&mut self, conn: ConnId, reply: Reply, action: Action, route: Route) {
        match route {
            Route::Refuse(why) => self.answer(&reply, Err(why)),
            Route::Query => self.query(reply, action),
            Route::Room => {
                let result = self.room_setting(&action);
                self.answer(&reply, result);
            }
            Route::RateUnchanged => {
                let data = json!({"rate_hz": self.desired.rate_hz.hz(), "unchanged": true});
                self.answer(&reply, Ok(data));
            }
            Route::RateChange => {
                let Action::SetRate(rate) = action else {
                    return;
                };
                let rollback = self.desired.clone();
                self.desired.rate_hz = rate;
                self.persist();
                self.wait_for(ProcessName::Capture, Until::Running, reply, Some(rollback));
                self.carry_out([Act::ReplaceCapture]);
            }
            Route::Shutdown => {
                self.answer(&reply, Ok(json!({"shutting_down": true})));
                self.begin_shutdown();
            }
            Route::Reload => {
                let result = self
                    .reload_inner()
                    .map(|changed| json!({"restarted": changed}));
                self.answer(&reply, result.map_err(AckError::from));
            }
            Route::Process(name) => self.process_verb(conn, reply, action, name),
            Route::Detector => {
                if let Err(e) =
                    self.forward(ProcessName::Detector, action, Some(reply.clone()), false)
                {
                    self.answer(&reply, Err(e));
                }
            }
            Route::Defer { detector } => {
                let changed = self.desired.clone().apply(&action);
                self.answer(
                    &reply,
                    Ok(json!({"deferred": true, "changed": changed, "detector": detector, "note": "applied when the detector is RUNNING again"})),
                );
                if changed && self.desired.apply(&action) {
                    self.persist();
                    self.push_status();
                }
            }
        }
    }

    /// A question oriond answers from its own state.
    fn query(&mut self, reply: Reply, action: Action) {
        match action {
            Action::GetRois => {
                let rois = self.desired.rois.as_ref().map_or(&[][..], |r| r.rois());
                self.answer(&reply, Ok(json!({"rois": rois})));
            }
            Action::GetSnapshot(request) => self.snapshot_request(reply, request),
            Action::GetAutoFocus => {
                let data = json!({"enabled": self.desired.auto_focus, "params": self.desired.auto_focus_params});
                self.answer(&reply, Ok(data));
            }
            Action::GetZones => {
                self.answer(&reply, Ok(json!({"zones": self.desired.zones})));
            }
            _ => {
                let mut status = self.status();
                status.models_on_disk = Some(self.models_on_disk());
                self.answer(&reply, Ok(json!(status)));
            }
        }
    }

    fn process_verb(&mut self, conn: ConnId, reply: Reply, action: Action, name: ProcessName) {
        match action {
            Action::ProcessStatus(_) => {
                let data = self
                    .children
                    .get(&name)
                    .map(|c| c.status(self.registry.serving(name)));
                self.answer(&reply, Ok(json!({"processes": [data]})));
            }
            Action::RestartProcess(_) => {
                if self.speaks_for(conn) == Some(name) {
                    // The requester is the process itself: answer before it goes.
                    self.answer(&reply, Ok(json!({"restarting": name})));
                } else {
                    self.wait_for(name, Until::Running, reply, None);
                }
                self.restart(name);
            }
            Action::StartProcess(_) => {
                if self.state_of(name) == Some(State::Running) {
                    return self.answer(&reply, Ok(json!({"already": "RUNNING"})));
                }
                self.wait_for(name, Until::Running, reply, None);
                if !matches!(self.state_of(name), Some(State::Starting | State::Stopping)) {
                    self.start_fresh(name);
                }
            }
            Action::StopProcess(_) => {
                self.wait_for(name, Until::Stopped, reply, None);
                self.stop_for_good(name);
            }
            Action::TailProcess { offset, bytes, .. } => {
                let (text, next) = self
                    .children
                    .get(&name)
                    .map(|c| c.log.read(offset, bytes))
                    .unwrap_or_default();
                let tail = TailReport { text, offset: next };
                self.answer(&reply, Ok(json!(tail)));
            }
            _ => {}
        }
    }

    fn wait_for(
        &mut self,
        name: ProcessName,
        until: Until,
        reply: Reply,
        rollback: Option<Desired>,
    ) {
        self.requests.waiters.push(Waiter {
            name,
            until,
            reply,
            rollback,
        });
    }

    /// Sends `action` to child `name`; its ack settles the request.
    pub(super) fn forward(
        &mut self,
        name: ProcessName,
        action: Action,
        reply: Option<Reply>,
        reapply: bool,
    ) -> Result<(), AckError> {
        let conn = self
            .child_conn(name)
            .ok_or_else(|| unavailable(format!("{name} is not connected")))?;
        let id = self.requests.next;
        self.requests.next += 1;
        let timeout = if matches!(action, Action::SetModelSize(_)) {
            MODEL_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let request = action.to_request(Some(&child_request_id(id)));
        self.requests.pending.insert(
            id,
            InFlight {
                reply,
                child: name,
                conn,
                action,
                reapply,
            },
        );
        self.registry
            .send_raw(conn, request.to_string().into_bytes());
        after(&self.events, timeout, Timer::Request(id));
        Ok(())
    }

    /// The detector's ack on `conn`: it settles a request only if the request went out on
    /// that connection (no connection answers for another).
    pub(super) fn child_ack(&mut self, conn: ConnId, name: ProcessName, ack: Ack) {
        let Some(id) = ack.request_id.as_deref().and_then(parse_child_request_id) else {
            tracing::debug!(%name, "ack for nothing pending");
            return;
        };
        match self.requests.pending.get(&id) {
            None => tracing::debug!(%name, "ack for nothing pending"),
            Some(p) if p.conn != conn => {
                let why = format!("an ack for oriond-{id}, a request sent to another connection");
                self.refused(conn, crate::authority::Role::Child(name), &why);
            }
            Some(_) => {
                if let Some(pending) = self.requests.pending.remove(&id) {
                    self.settle(pending, ack.into_result());
                }
            }
        }
    }

    pub(super) fn request_timed_out(&mut self, id: u64) {
        if let Some(p) = self.requests.pending.remove(&id) {
            let why = AckError::new(
                ErrorKind::Timeout,
                format!("no answer from {} in time", p.child),
            );
            self.settle(p, Err(why));
        }
    }

    /// A child answered (or did not): answer the requester first, then commit the desired
    /// state on success (and tell orion-control), and count down a re-application.
    fn settle(&mut self, pending: InFlight, result: Result<Value, AckError>) {
        if pending.reapply {
            if let Err(e) = &result {
                tracing::error!(child = %pending.child, action = pending.action.name(), error = %e, "re-applying the desired state failed");
            }
            if let Some(c) = self.children.get_mut(&pending.child) {
                c.applying = c.applying.saturating_sub(1);
            }
            self.maybe_running(pending.child);
            return;
        }
        let ok = result.is_ok();
        if let Some(reply) = &pending.reply {
            self.answer(reply, result);
        }
        if ok && self.desired.apply(&pending.action) {
            self.persist();
            self.push_status();
        }
    }

    pub(super) fn fail_pending(&mut self, name: ProcessName, why: &str) {
        let ids: Vec<u64> = self
            .requests
            .pending
            .iter()
            .filter(|(_, p)| p.child == name)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(p) = self.requests.pending.remove(&id) {
                self.settle(p, Err(AckError::new(ErrorKind::Failed, why)));
            }
        }
    }

    /// Answers who waits for `name` to reach `reached`.
    pub(super) fn resolve_waiters(&mut self, name: ProcessName, reached: State) {
        let mut i = 0;
        while i < self.requests.waiters.len() {
            let w = &self.requests.waiters[i];
            let restart_follows = self.restart_after_stop.contains(&name);
            let Some(ok) = (w.name == name)
                .then(|| w.until.settled_by(reached, restart_follows))
                .flatten()
            else {
                i += 1;
                continue;
            };
            let w = self.requests.waiters.remove(i);
            let result = if ok {
                let pid = self.registry.serving(name).map(|inc| inc.pid);
                let mut data = json!({"name": name, "state": reached, "pid": pid});
                if w.reply.command == "set_inference_rate" {
                    data["rate_hz"] = json!(self.desired.rate_hz.hz());
                    data["handover"] = json!(self.last_handover);
                }
                Ok(data)
            } else {
                if let Some(old) = w.rollback {
                    self.desired = old;
                    self.persist();
                }
                let why = self
                    .children
                    .get(&name)
                    .and_then(|c| c.life.reason.clone())
                    .unwrap_or_default();
                Err(AckError::new(
                    ErrorKind::Failed,
                    format!("{name} is {}: {why}", reached.as_str()),
                ))
            };
            self.answer(&w.reply, result);
        }
    }

    /// Sends the ack of `reply`, to it and to repeats of the same MQTT request that wait.
    pub(super) fn answer(&mut self, reply: &Reply, result: Result<Value, AckError>) {
        let ack = Ack::new(&reply.command, reply.request_id.clone(), result);
        self.registry.send(reply.conn, &Message::Ack(ack.clone()));
        if let Some(key) = &reply.dedupe {
            for other in self
                .requests
                .seen
                .finish(key, &ack, crate::dedupe::now_ms())
            {
                self.registry.send(other.conn, &Message::Ack(ack.clone()));
            }
            // Remembered across a restart of oriond too.
            self.persist();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_settles_only_on_the_states_that_answer_it() {
        use State::*;
        let all = [Stopped, Starting, Running, Backoff, Stopping, Exited, Fatal];
        for reached in all {
            for restart_follows in [false, true] {
                let running = Until::Running.settled_by(reached, restart_follows);
                let expect = match reached {
                    Running => Some(true),
                    Fatal => Some(false),
                    Stopped if !restart_follows => Some(false),
                    _ => None,
                };
                assert_eq!(running, expect, "Running, {reached:?}, {restart_follows}");
                let stopped = Until::Stopped.settled_by(reached, restart_follows);
                let expect = matches!(reached, Stopped | Fatal).then_some(true);
                assert_eq!(stopped, expect, "Stopped, {reached:?}, {restart_follows}");
            }
        }
    }

    #[test]
    fn child_request_ids_round_trip_and_foreign_ids_are_ignored() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(parse_child_request_id(&child_request_id(id)), Some(id));
        }
        for foreign in [
            "",
            "oriond-",
            "oriond-x",
            "mqtt-7",
            "7",
            "oriond--1",
            "ORIOND-1",
        ] {
            assert_eq!(parse_child_request_id(foreign), None, "{foreign}");
        }
    }
}

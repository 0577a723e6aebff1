//! The supervisor: one task that owns every piece of state (children, peers, desired state,
//! requests in flight) and reacts to [`Event`]s — a child exited or wrote a line, a peer
//! connected or sent a frame, a timer fired, a signal arrived. Nothing else mutates that
//! state, so there are no locks and no races between a crash and a command.
//!
//! By concern:
//! - [`processes`](self::processes): children's lifecycles driven through the state machine
//!   of `crate::lifecycle` — start, stop, restart, exits, readiness, timers;
//! - [`routing`](self::routing): requests (the command catalog and the supervisor verbs)
//!   to the process that owns them, acks back, repeated ids answered once;
//! - [`handover`](self::handover): a capture replaced make-before-break (rate change,
//!   reload);
//! - [`standby`](self::standby): a loaded detector kept to take over when the detector
//!   dies ([`understudy`](self::understudy): what it shares with the capture successor);
//! - [`room`](self::room): room occupancy from the detections and the state;
//! - [`snapshots`](self::snapshots): the newest frame drawn with the last boxes;
//! - [`reload`](self::reload): the config re-read on SIGHUP;
//! - [`status`](self::status): the status oriond reports.

mod act;
mod handover;
mod processes;
mod reload;
mod room;
mod routing;
mod snapshots;
mod stand_ins;
mod standby;
mod status;
mod telemetry;
mod understudy;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use orion_config::Config;
use orion_protocol::ProcessName;
use orion_protocol::command::{Ack, AckError, Action, ErrorKind};
use orion_protocol::message::{self, Frame, Message};
use orion_ring::RingOwner;
use tokio::sync::mpsc;

use crate::authority::{self, Refusals, Role};
use crate::child::Child;
use crate::desired::Desired;
use crate::events::{ConnId, Event, Events, Timer};
use crate::lifecycle::{Policy, State};
use crate::persist::Persister;
use crate::registry::{Part, Registry};

pub use routing::Requests;

pub struct Supervisor {
    config: Config,
    config_path: PathBuf,
    socket_path: PathBuf,
    desired: Desired,
    children: BTreeMap<ProcessName, Child>,
    /// Every process oriond started and every connection, and which is which.
    registry: Registry,
    requests: Requests,
    /// Children still to start at boot, in order; each waits for the one before.
    boot: VecDeque<ProcessName>,
    /// Children to start again once they stopped.
    restart_after_stop: Vec<ProcessName>,
    /// Children still to stop at shutdown, in order (`Some` once shutting down).
    shutdown: Option<VecDeque<ProcessName>>,
    events: Events,
    ring: RingOwner,
    started: Instant,
    persister: Option<Persister>,
    /// Spawns so far: each gets its own generation number.
    generations: u64,
    /// A capture in standby that is to replace the running one.
    successor: Option<handover::Successor>,
    /// A detector loaded and waiting to take over when the detector dies.
    standby: Option<standby::Standby>,
    standby_record: standby::StandbyRecord,
    /// How the last capture replacement went (status `capture_handover`).
    last_handover: Option<orion_protocol::status::Handover>,
    /// Inference times and the last capture switch's gap, as this box measured them.
    measured: crate::measured::Measured,
    occupancy: orion_room::occupancy::Tracker,
    zones: orion_room::zones::ZoneTrackers,
    /// Care events (room, zones, classes); the open ones are persisted.
    care_events: orion_room::events::Events,
    /// Care events for orion-control while it is not connected (bounded).
    unsent_events: VecDeque<orion_protocol::event::CareEvent>,
    snapshots: snapshots::Snapshots,
    /// What connections sent beyond their role (`crate::authority`).
    refusals: Refusals,
    telemetry: telemetry::Telemetry,
    /// Whether the box can afford the stand-ins now (`crate::memory`).
    stand_ins: stand_ins::StandIns,
}

impl Supervisor {
    pub fn new(
        config: Config,
        config_path: PathBuf,
        desired: Desired,
        ring: RingOwner,
        events: Events,
    ) -> Self {
        let log = config.supervisor.log_buffer_kb as usize * 1024;
        let children = managed(&config)
            .into_iter()
            .map(|name| (name, Child::new(name, log)))
            .collect();
        // A command is refused once older than command_max_age_s, and may be stamped up to
        // MAX_CLOCK_AHEAD in the future: remembered for as long as it can arrive.
        let window = Duration::from_secs(u64::from(config.mqtt.command_max_age_s))
            + orion_protocol::command::MAX_CLOCK_AHEAD;
        let mut requests = Requests::new(window);
        let answered = config
            .instance_id
            .answered_path(&config.supervisor.state_dir);
        let (records, warning) = crate::dedupe::load(&answered);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        requests.seen.restore(records, crate::dedupe::now_ms());
        let care_events = room::care_events(&config);
        Self {
            care_events,
            unsent_events: VecDeque::new(),
            occupancy: room::tracker(&config),
            zones: room::zone_trackers(&config, &desired.zones),
            socket_path: config.socket_path(),
            config,
            config_path,
            desired,
            children,
            registry: Registry::default(),
            requests,
            boot: VecDeque::new(),
            restart_after_stop: Vec::new(),
            shutdown: None,
            events,
            ring,
            started: Instant::now(),
            persister: None,
            generations: 0,
            successor: None,
            standby: None,
            standby_record: Default::default(),
            last_handover: None,
            measured: Default::default(),
            snapshots: Default::default(),
            refusals: Refusals::default(),
            telemetry: Default::default(),
            stand_ins: Default::default(),
        }
    }

    /// Starts the children in order and handles events until shut down.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) -> Result<()> {
        self.persister = Some(Persister::start());
        self.boot = self.children.keys().copied().collect();
        self.boot_next();
        if let Some(interval) = sd_notify::watchdog_enabled() {
            // Pings at half systemd's interval.
            crate::events::every(&self.events, interval / 2, || Timer::Watchdog);
        }
        crate::events::every(&self.events, standby::STANDBY_CHECK, || Timer::Standby);
        crate::events::every(&self.events, telemetry::TICK, || Timer::Telemetry);
        while let Some(event) = events.recv().await {
            self.handle(event);
            if self.finished() {
                break;
            }
        }
        if let Some(persister) = self.persister.take() {
            persister.flush().await;
        }
        tracing::info!("oriond stopped");
        Ok(())
    }

    fn finished(&self) -> bool {
        self.shutdown.as_ref().is_some_and(VecDeque::is_empty)
            && self.children.values().all(|c| !c.state().is_alive())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited {
                name,
                generation,
                status,
                reaped,
            } => self.exited(name, generation, &status, reaped),
            Event::Output { name, line } => self.output(name, &line),
            Event::Accepted {
                conn,
                outbox,
                peer_pid,
                descendant,
            } => self.registry.accepted(conn, outbox, peer_pid, descendant),
            Event::Frame { conn, body } => self.frame(conn, &body),
            Event::Closed { conn, why } => self.closed(conn, why),
            Event::Timer(timer) => self.timer(timer),
            Event::Snapshot { id, result } => self.snapshot_done(id, result),
            Event::Terminate => self.begin_shutdown(),
            Event::Reload => self.reload(),
        }
    }

    /// The policy the lifecycles follow now.
    fn policy(&self) -> Policy {
        let s = &self.config.supervisor;
        Policy {
            startsecs: Duration::from_secs_f64(s.startsecs),
            startretries: s.startretries,
            backoff_initial: Duration::from_secs_f64(s.backoff_initial_s),
            backoff_max: Duration::from_secs_f64(s.backoff_max_s),
            shutting_down: self.shutdown.is_some(),
        }
    }

    fn state_of(&self, name: ProcessName) -> Option<State> {
        self.children.get(&name).map(Child::state)
    }

    // ---- the socket -----------------------------------------------------------------------

    fn frame(&mut self, conn: ConnId, body: &[u8]) {
        let frame = match message::decode(body) {
            Ok(frame) => frame,
            Err(why) => return self.routing_reject(conn, why),
        };
        // A connection oriond let go (it did not read its answers): nothing it still sent
        // is carried out.
        let Some(role) = self.registry.role(conn) else {
            tracing::debug!(conn, "a message from a connection let go; dropped");
            self.refusals.from_let_go += 1;
            return;
        };
        match frame {
            Frame::Request(cmd) => {
                let allowed = match &cmd.action {
                    Ok(action) => authority::may_request(role, action),
                    // Unreadable: whoever may ask the plainest question gets its error; a
                    // role that may send no request at all is refused as for any other.
                    Err(_) => authority::may_request(role, &Action::GetStatus),
                };
                match allowed {
                    Ok(()) => self.request(conn, cmd),
                    Err(why) => {
                        self.refused(conn, role, &why);
                        let ack =
                            Ack::for_command(&cmd, Err(AckError::new(ErrorKind::Refused, why)));
                        self.registry.send(conn, &Message::Ack(ack));
                    }
                }
            }
            // Refused messages get no answer: a child answers what it cannot read with an
            // ack, and an answer to that would never end.
            Frame::Message(m) if let Err(why) = authority::may_send(role, &m) => {
                self.refused(conn, role, &why);
            }
            Frame::Message(m) => match self.registry.on(conn).map(|inc| (inc.name, inc.part)) {
                Some((ProcessName::Capture, Part::Understudy)) => self.successor_message(*m),
                Some((_, Part::Understudy)) => self.standby_message(*m),
                Some((child, Part::Serving)) => self.child_message(conn, child, *m, body),
                None => self.message(conn, *m),
            },
        }
    }

    /// Counts a refusal; logs a connection's first.
    pub(super) fn refused(&mut self, conn: ConnId, role: Role, why: &str) {
        if self.refusals.record(conn, role, why) {
            tracing::warn!(
                conn,
                role = role.as_str(),
                why,
                "refused; this connection's further refusals are counted, not logged"
            );
        }
    }

    /// A message on a connection that speaks for no process yet: a hello, or an error.
    fn message(&mut self, conn: ConnId, m: Message) {
        match m {
            Message::Hello { name, .. } => self.hello(conn, name),
            _ => self.routing_reject(
                conn,
                "say hello first (only oriond's children send messages)".into(),
            ),
        }
    }

    fn hello(&mut self, conn: ConnId, name: ProcessName) {
        let part = match self.registry.hello(conn, name) {
            Ok(part) => part,
            Err(why) => {
                tracing::warn!(%name, why, "hello refused; closing the connection");
                self.routing_reject(conn, why);
                self.registry.remove(conn);
                return;
            }
        };
        tracing::debug!(%name, ?part, conn, "hello");
    }

    fn child_message(&mut self, conn: ConnId, name: ProcessName, m: Message, body: &[u8]) {
        match m {
            Message::Ready => {
                // orion-control publishes the occupancy retained from the start.
                if name == ProcessName::Control {
                    self.send_occupancy();
                    self.send_all_zones();
                    self.send_unsent_events();
                }
                self.child_ready(name);
            }
            Message::Ack(ack) => self.child_ack(conn, name, ack),
            Message::CaptureStatus(_) | Message::DetectorStatus(_) | Message::ControlStatus(_) => {
                self.child_status(name, m)
            }
            Message::Detection {
                detection,
                captured_unix_ns,
            } if name == ProcessName::Detector => {
                // Straight on to orion-control, bytes unchanged.
                if let Some(control) = self.control_conn() {
                    self.registry.send_raw(control, body.to_vec());
                }
                self.observe(&detection, captured_unix_ns);
                self.measured.observe(&detection, std::time::Instant::now());
                self.snapshots.last_detection = Some((detection, captured_unix_ns));
            }
            _ => tracing::debug!(%name, "message ignored"),
        }
    }

    fn closed(&mut self, conn: ConnId, why: Option<String>) {
        self.refusals.closed(conn);
        if let Some(why) = why {
            tracing::warn!(conn, why, "bad message; closing the connection");
            self.routing_reject(conn, why);
        }
        self.registry.remove(conn);
    }

    /// The connection of `name`'s serving incarnation, if it is connected.
    pub(super) fn child_conn(&self, name: ProcessName) -> Option<ConnId> {
        self.registry.conn_of(name)
    }

    /// The child whose serving incarnation is on `conn`.
    pub(super) fn speaks_for(&self, conn: ConnId) -> Option<ProcessName> {
        self.registry
            .on(conn)
            .filter(|inc| inc.part == Part::Serving)
            .map(|inc| inc.name)
    }

    fn control_conn(&self) -> Option<ConnId> {
        self.child_conn(ProcessName::Control)
    }

    /// Tells orion-control the status changed (it publishes the retained status).
    fn push_status(&mut self) {
        self.gate_occupancy();
        if let Some(control) = self.control_conn() {
            let status = Box::new(self.status());
            self.registry.send(control, &Message::Status { status });
        }
    }

    /// Saves the desired state and the answered MQTT commands in the background
    /// (coalesced; see `crate::persist`).
    fn persist(&self) {
        if let Some(p) = &self.persister {
            p.save(
                &self.desired,
                self.requests.seen.records(),
                self.care_events.open(),
                &self.config,
            );
        }
    }

    // ---- timers ---------------------------------------------------------------------------

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Retry { name, generation } => {
                self.on_child_timer(name, generation, crate::lifecycle::Input::RetryDue)
            }
            Timer::Kill { name, generation } => {
                self.on_child_timer(name, generation, crate::lifecycle::Input::KillDue)
            }
            Timer::ReadyTimeout { name, generation } => {
                self.on_child_timer(name, generation, crate::lifecycle::Input::ReadyTimeout)
            }
            Timer::Request(id) => self.request_timed_out(id),
            Timer::Handover { generation } => self.handover_timed_out(generation),
            Timer::Standby => self.check_standby(),
            Timer::Watchdog => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            Timer::Telemetry => self.telemetry_tick(),
        }
    }
}

/// The children a config asks for, in start order.
fn managed(config: &Config) -> Vec<ProcessName> {
    ProcessName::START_ORDER
        .into_iter()
        .filter(|n| match n {
            ProcessName::Broker => config.mqtt.enabled && config.mqtt.embedded,
            ProcessName::Control => config.mqtt.enabled,
            ProcessName::Detector | ProcessName::Capture => true,
        })
        .collect()
}

//! The supervisor: one task that owns every piece of state (children, connections,
//! desired state, requests in flight) and reacts to events — a child exited or wrote a
//! line, a peer connected or sent a message, a timer fired, a signal arrived. Nothing else
//! mutates that state, so there are no locks and no races between a crash and a command.
//!
//! Children follow supervisord's states (DESIGN.md section 6): STARTING until they report
//! ready and the desired state is re-applied, then RUNNING; an exit before `startsecs` is a
//! failed start (BACKOFF with capped exponential delay, FATAL after `startretries`); an
//! exit of a RUNNING child restarts it at once. Stops are SIGTERM, `stopwaitsecs`, SIGKILL.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_config::Config;
use orion_process::ring_arg::RING_FD;
use orion_protocol::command::{self, Ack};
use orion_protocol::{Action, ProcessName};
use orion_ring::RingOwner;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::children::{self, Child, ExitInfo, State};
use crate::desired::Desired;
use crate::ipc::{MAX_CONNECTIONS, Outbox};

pub enum Event {
    Exited {
        name: ProcessName,
        generation: u64,
        status: String,
        at: SystemTime,
    },
    Output {
        name: ProcessName,
        line: String,
    },
    Accepted {
        conn: u64,
        outbox: Outbox,
        peer_pid: Option<u32>,
    },
    Message {
        conn: u64,
        body: Vec<u8>,
    },
    Closed {
        conn: u64,
        why: Option<String>,
    },
    Timer(Timer),
    Terminate,
    Reload,
}

pub enum Timer {
    Retry { name: ProcessName, generation: u64 },
    Kill { name: ProcessName, generation: u64 },
    ReadyTimeout { name: ProcessName, generation: u64 },
    Request(u64),
    Watchdog,
}

struct Conn {
    outbox: Outbox,
    peer_pid: Option<u32>,
    child: Option<ProcessName>,
}

/// Where and how to answer a request.
#[derive(Clone)]
struct Reply {
    conn: u64,
    command: String,
    request_id: Option<String>,
    /// Set for MQTT commands with a request id: the same id again is answered from
    /// [`Supervisor::seen`] instead of being applied twice.
    dedupe: Option<String>,
}

/// What oriond remembers of an MQTT request id.
enum Seen {
    /// Being handled; these repeats wait for the same answer.
    InFlight(Vec<Reply>),
    /// Answered with this ack at this time.
    Done(Ack, Instant),
}

/// Request ids remembered at most (the oldest answered ones are forgotten first).
const SEEN_MAX: usize = 4096;

/// A request oriond sent to a child and awaits the ack of.
struct Pending {
    reply: Option<Reply>,
    child: ProcessName,
    action: Action,
    /// Part of bringing a restarted child to the desired state.
    reapply: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    Running,
    Stopped,
}

/// A request answered when a child reaches a state.
struct Waiter {
    name: ProcessName,
    until: Until,
    reply: Reply,
    /// Desired state to restore if the child does not get there.
    rollback: Option<Desired>,
}

pub struct Supervisor {
    config: Config,
    config_path: PathBuf,
    socket_path: PathBuf,
    desired: Desired,
    children: BTreeMap<ProcessName, Child>,
    conns: HashMap<u64, Conn>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    waiters: Vec<Waiter>,
    /// Children still to start at boot, in order; each waits for the one before.
    boot: VecDeque<ProcessName>,
    /// Children to start again once they stopped.
    restart_after_stop: Vec<ProcessName>,
    /// Children still to stop at shutdown, in order.
    shutdown: Option<VecDeque<ProcessName>>,
    events: mpsc::UnboundedSender<Event>,
    ring: RingOwner,
    started: Instant,
    /// MQTT request ids recently seen (redelivered commands are answered, not re-applied).
    seen: HashMap<String, Seen>,
    persister: Option<crate::persist::Persister>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MODEL_TIMEOUT: Duration = Duration::from_secs(180);
const TAIL_MAX: usize = 64 * 1024;

impl Supervisor {
    pub fn new(
        config: Config,
        config_path: PathBuf,
        desired: Desired,
        ring: RingOwner,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        let log = config.supervisor.log_buffer_kb as usize * 1024;
        let children = managed(&config)
            .into_iter()
            .map(|name| (name, Child::new(name, log)))
            .collect();
        Self {
            socket_path: config.socket_path(),
            config,
            config_path,
            desired,
            children,
            conns: HashMap::new(),
            pending: HashMap::new(),
            next_request: 1,
            waiters: Vec::new(),
            boot: VecDeque::new(),
            restart_after_stop: Vec::new(),
            shutdown: None,
            events,
            ring,
            started: Instant::now(),
            seen: HashMap::new(),
            persister: None,
        }
    }

    /// Starts the children in order and handles events until shut down.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) -> Result<()> {
        self.persister = Some(crate::persist::Persister::start());
        self.boot = self.children.keys().copied().collect();
        self.boot_next();
        if let Some(interval) = watchdog_interval() {
            let tx = self.events.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    if tx.send(Event::Timer(Timer::Watchdog)).is_err() {
                        return;
                    }
                }
            });
        }
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
            && self
                .children
                .values()
                .all(|c| matches!(c.state, State::Stopped | State::Fatal | State::Exited))
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited {
                name,
                generation,
                status,
                at,
            } => self.exited(name, generation, status, at),
            Event::Output { name, line } => {
                // Into the journal (oriond's stderr) and the buffer `orionctl tail` reads.
                eprintln!("{name}: {line}");
                if let Some(c) = self.children.get_mut(&name) {
                    c.log.push_line(&line);
                }
                // The broker cannot say hello; it says it listens.
                if name == ProcessName::Broker && children::broker_ready_line(&line) {
                    self.ready(name);
                }
            }
            Event::Accepted {
                conn,
                outbox,
                peer_pid,
            } => {
                if self.conns.len() >= MAX_CONNECTIONS {
                    tracing::warn!("too many connections; refusing one");
                    return; // dropping the outbox closes it
                }
                self.conns.insert(
                    conn,
                    Conn {
                        outbox,
                        peer_pid,
                        child: None,
                    },
                );
            }
            Event::Message { conn, body } => self.message(conn, &body),
            Event::Closed { conn, why } => self.closed(conn, why),
            Event::Timer(timer) => self.timer(timer),
            Event::Terminate => self.begin_shutdown(),
            Event::Reload => self.reload(),
        }
    }

    // ---- children ---------------------------------------------------------------------------

    fn boot_next(&mut self) {
        while let Some(&name) = self.boot.front() {
            if self.shutdown.is_some() {
                self.boot.clear();
                return;
            }
            self.start(name);
            match self.children.get(&name).map(|c| c.state) {
                Some(State::Starting | State::Backoff) => return,
                _ => {
                    self.boot.pop_front();
                }
            }
        }
        if self.boot.is_empty() {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            tracing::info!("all children started");
        }
    }

    /// The boot sequence moves on once `name` is RUNNING or given up on.
    fn boot_progress(&mut self, name: ProcessName) {
        if self.boot.front() == Some(&name) {
            self.boot.pop_front();
            self.boot_next();
        }
    }

    fn start(&mut self, name: ProcessName) {
        let spec = children::spec(name, &self.config, &self.config_path, &self.desired);
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        let spec = match spec {
            Ok(spec) => spec,
            Err(why) => {
                if matches!(
                    child.state,
                    State::Starting | State::Running | State::Stopping
                ) {
                    return;
                }
                tracing::error!("{name}: {why}");
                child.generation += 1;
                self.failed_start(name, why);
                return;
            }
        };
        if matches!(
            child.state,
            State::Starting | State::Running | State::Stopping
        ) {
            return;
        }
        if let Err(e) = write_files(&spec.files) {
            let why = format!("cannot write {name}'s files: {e}");
            tracing::error!("{why}");
            if let Some(child) = self.children.get_mut(&name) {
                child.generation += 1;
            }
            self.failed_start(name, why);
            return;
        }
        let mut cmd = tokio::process::Command::new(&spec.program);
        crate::sys::die_with_oriond(&mut cmd);
        if let Some(access) = spec.ring {
            let handed = self
                .ring
                .share(access)
                .map_err(|e| e.to_string())
                .and_then(|fd| {
                    cmd.fd_mappings(vec![FdMapping {
                        parent_fd: fd,
                        child_fd: RING_FD,
                    }])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                });
            if let Err(e) = handed {
                let why = format!("cannot hand the frame ring to {name}: {e}");
                tracing::error!("{why}");
                if let Some(child) = self.children.get_mut(&name) {
                    child.generation += 1;
                }
                self.failed_start(name, why);
                return;
            }
        }
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env(orion_process::channel::SOCKET_ENV, &self.socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Terminal signals (Ctrl-C) go to oriond only; it stops the children in order.
            .process_group(0);
        let mut process = match cmd.spawn() {
            Ok(p) => p,
            Err(e) => {
                let why = format!("cannot start {}: {e}", spec.program.display());
                tracing::error!("{name}: {why}");
                child.generation += 1;
                self.failed_start(name, why);
                return;
            }
        };
        child.generation += 1;
        if child.spawned_once {
            child.restarts += 1;
        }
        child.spawned_once = true;
        child.pid = process.id();
        child.state = State::Starting;
        child.started = Some((Instant::now(), SystemTime::now()));
        child.ready = false;
        child.applying = 0;
        child.conn = None;
        child.last_status = None;
        let generation = child.generation;
        tracing::info!(%name, pid = child.pid, "starting");
        for stream in [
            process
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            process
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = self.events.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(mut line)) = lines.next_line().await {
                    truncate(&mut line, 8192);
                    let event = Event::Output { name, line };
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            });
        }
        let tx = self.events.clone();
        tokio::spawn(async move {
            let status = match process.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("wait failed: {e}"),
            };
            let at = SystemTime::now();
            let _ = tx.send(Event::Exited {
                name,
                generation,
                status,
                at,
            });
        });
        let timeout = Duration::from_secs_f64(self.config.supervisor.ready_timeout_s);
        self.after(timeout, Timer::ReadyTimeout { name, generation });
        self.push_status();
    }

    fn exited(&mut self, name: ProcessName, generation: u64, status: String, reaped: SystemTime) {
        // Detected when the supervisor acts on it (now), not when the reaper saw it.
        let at = SystemTime::now();
        let startsecs = self.config.supervisor.startsecs;
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        if generation != child.generation {
            return;
        }
        let expected = child.state == State::Stopping;
        let uptime = child
            .started
            .map_or(0.0, |(t, _)| t.elapsed().as_secs_f64());
        let at_unix_us = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let reaped_unix_us = reaped
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        child.last_exit = Some(ExitInfo {
            at_unix_us,
            reaped_unix_us,
            status: status.clone(),
            expected,
        });
        if name == ProcessName::Capture
            && let Some(pid) = child.pid
        {
            // A reaped writer's pid may be recycled; it must never look like a live writer.
            self.ring.clear_writer(pid);
        }
        child.pid = None;
        child.ready = false;
        if let Some(conn) = child.conn.take() {
            self.conns.remove(&conn);
        }
        let was = child.state;
        if expected {
            tracing::info!(%name, %status, "stopped");
        } else {
            tracing::warn!(%name, %status, uptime_s = uptime, state = was.as_str(), "exited");
        }
        self.fail_pending(name, &format!("{name} exited ({status}) before answering"));
        match was {
            State::Stopping => {
                self.set_state(name, State::Stopped, Some(format!("stopped ({status})")));
                self.stopped(name);
            }
            State::Running if uptime >= startsecs => {
                self.set_state(name, State::Exited, Some(format!("exited: {status}")));
                if let Some(c) = self.children.get_mut(&name) {
                    c.retries = 0;
                }
                if self.shutdown.is_none() {
                    self.start(name);
                }
            }
            _ => {
                let why = self
                    .children
                    .get_mut(&name)
                    .and_then(|c| c.reason.take())
                    .filter(|r| r.starts_with("not ready"))
                    .unwrap_or_else(|| format!("exited: {status}"));
                self.failed_start(name, why);
            }
        }
        self.push_status();
    }

    fn failed_start(&mut self, name: ProcessName, why: String) {
        let s = &self.config.supervisor;
        let (retries_max, initial, max) = (s.startretries, s.backoff_initial_s, s.backoff_max_s);
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        child.pid = None;
        if self.shutdown.is_some() {
            child.state = State::Stopped;
            self.stopped(name);
            return;
        }
        child.retries += 1;
        if child.retries > retries_max {
            let reason = format!("{why}; gave up after {} attempts", child.retries);
            tracing::error!(%name, reason, "FATAL");
            self.set_state(name, State::Fatal, Some(reason.clone()));
            self.resolve_waiters(name, State::Fatal, &reason);
            self.boot_progress(name);
            return;
        }
        let delay = (initial * 2f64.powi(child.retries as i32 - 1)).min(max);
        let generation = child.generation;
        let reason = format!("{why}; retry {} in {delay:.1} s", child.retries);
        tracing::warn!(%name, reason, "BACKOFF");
        self.set_state(name, State::Backoff, Some(reason));
        self.after(
            Duration::from_secs_f64(delay),
            Timer::Retry { name, generation },
        );
    }

    fn set_state(&mut self, name: ProcessName, state: State, reason: Option<String>) {
        if let Some(c) = self.children.get_mut(&name) {
            c.state = state;
            c.reason = reason;
        }
    }

    /// `name` reported ready: bring it to the desired state, then it is RUNNING.
    fn ready(&mut self, name: ProcessName) {
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        if child.state != State::Starting || child.ready {
            return;
        }
        child.ready = true;
        if name == ProcessName::Detector {
            for action in self.desired.detector_commands() {
                if self.forward(name, action, None, true).is_ok()
                    && let Some(c) = self.children.get_mut(&name)
                {
                    c.applying += 1;
                }
            }
        }
        self.maybe_running(name);
    }

    fn maybe_running(&mut self, name: ProcessName) {
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        if child.state == State::Starting && child.ready && child.applying == 0 {
            child.state = State::Running;
            child.reason = None;
            tracing::info!(%name, pid = child.pid, "RUNNING");
            self.resolve_waiters(name, State::Running, "");
            self.boot_progress(name);
            self.push_status();
        }
    }

    fn stop(&mut self, name: ProcessName) {
        let wait = Duration::from_secs_f64(self.config.supervisor.stopwaitsecs);
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        match child.state {
            State::Starting | State::Running => {
                child.state = State::Stopping;
                if let Some(pid) = child.pid {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
                let generation = child.generation;
                self.after(wait, Timer::Kill { name, generation });
            }
            State::Stopping => {}
            State::Backoff | State::Exited | State::Fatal | State::Stopped => {
                // A pending retry belongs to the old generation and is ignored.
                child.generation += 1;
                child.state = State::Stopped;
                child.reason = Some("stopped".into());
                self.stopped(name);
            }
        }
        self.push_status();
    }

    /// `name` reached STOPPED: answer waiters, restart it if asked, continue a shutdown.
    fn stopped(&mut self, name: ProcessName) {
        self.resolve_waiters(name, State::Stopped, "");
        if let Some(i) = self.restart_after_stop.iter().position(|n| *n == name) {
            self.restart_after_stop.remove(i);
            if self.shutdown.is_none() {
                if let Some(c) = self.children.get_mut(&name) {
                    c.retries = 0;
                }
                self.start(name);
            }
        }
        self.shutdown_next();
    }

    fn restart(&mut self, name: ProcessName) {
        match self.children.get(&name).map(|c| c.state) {
            Some(State::Starting | State::Running) => {
                self.restart_after_stop.push(name);
                self.stop(name);
            }
            Some(State::Stopping) => self.restart_after_stop.push(name),
            Some(_) => {
                if let Some(c) = self.children.get_mut(&name) {
                    c.retries = 0;
                    c.generation += 1;
                    c.state = State::Stopped;
                }
                self.start(name);
            }
            None => {}
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!("shutting down");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.boot.clear();
        self.restart_after_stop.clear();
        let order: VecDeque<ProcessName> = self.children.keys().rev().copied().collect();
        self.shutdown = Some(order);
        self.shutdown_next();
    }

    fn shutdown_next(&mut self) {
        loop {
            let Some(&name) = self.shutdown.as_ref().and_then(VecDeque::front) else {
                return;
            };
            let state = self.children.get(&name).map(|c| c.state);
            match state {
                Some(State::Stopping) => return,
                Some(State::Starting | State::Running) => {
                    self.stop(name);
                    return;
                }
                _ => {
                    if let Some(c) = self.children.get_mut(&name) {
                        c.generation += 1;
                        if c.state != State::Fatal {
                            c.state = State::Stopped;
                        }
                    }
                    if let Some(q) = self.shutdown.as_mut() {
                        q.pop_front();
                    }
                }
            }
        }
    }

    // ---- timers -----------------------------------------------------------------------------

    fn after(&self, delay: Duration, timer: Timer) {
        let tx = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Event::Timer(timer));
        });
    }

    fn timer(&mut self, timer: Timer) {
        let current = |s: &Self, name: ProcessName, generation: u64, state: State| {
            s.children
                .get(&name)
                .is_some_and(|c| c.generation == generation && c.state == state)
        };
        match timer {
            Timer::Retry { name, generation } => {
                if current(self, name, generation, State::Backoff) {
                    self.start(name);
                }
            }
            Timer::Kill { name, generation } => {
                if current(self, name, generation, State::Stopping)
                    && let Some(pid) = self.children.get(&name).and_then(|c| c.pid)
                {
                    tracing::warn!(%name, pid, "did not stop in time; SIGKILL");
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
            }
            Timer::ReadyTimeout { name, generation } => {
                if current(self, name, generation, State::Starting) {
                    let secs = self.config.supervisor.ready_timeout_s;
                    if let Some(c) = self.children.get_mut(&name) {
                        c.reason = Some(format!("not ready within {secs} s"));
                        if let Some(pid) = c.pid {
                            tracing::warn!(%name, pid, "not ready in time; SIGKILL");
                            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        }
                    }
                }
            }
            Timer::Request(id) => {
                if let Some(p) = self.pending.remove(&id) {
                    let why = format!("no answer from {} in time", p.child);
                    self.settle(p, Err(why));
                }
            }
            Timer::Watchdog => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }

    // ---- connections ------------------------------------------------------------------------

    fn send(&mut self, conn: u64, value: &impl serde::Serialize) {
        let Ok(body) = serde_json::to_vec(value) else {
            return;
        };
        self.send_raw(conn, body);
    }

    fn send_raw(&mut self, conn: u64, body: Vec<u8>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.outbox.try_send(body).is_err() {
            tracing::warn!(
                conn,
                "peer does not read its messages; dropping the connection"
            );
            self.conns.remove(&conn);
        }
    }

    fn answer(&mut self, reply: &Reply, result: Result<Value, String>) {
        let ack = Ack::new(&reply.command, reply.request_id.clone(), result);
        self.send(reply.conn, &ack);
        if let Some(key) = &reply.dedupe {
            if let Some(Seen::InFlight(waiting)) = self.seen.remove(key) {
                for other in waiting {
                    self.send(other.conn, &ack);
                }
            }
            self.remember(key.clone(), ack);
        }
    }

    /// Keeps an answered MQTT request id for `mqtt.command_max_age_s` (a command older than
    /// that is refused as expired anyway), at most [`SEEN_MAX`] of them.
    fn remember(&mut self, key: String, ack: Ack) {
        let window = Duration::from_secs(u64::from(self.config.mqtt.command_max_age_s));
        self.seen
            .retain(|_, s| !matches!(s, Seen::Done(_, at) if at.elapsed() > window));
        if self.seen.len() >= SEEN_MAX {
            let oldest = self
                .seen
                .iter()
                .filter_map(|(k, s)| match s {
                    Seen::Done(_, at) => Some((*at, k.clone())),
                    Seen::InFlight(_) => None,
                })
                .min();
            if let Some((_, k)) = oldest {
                self.seen.remove(&k);
            }
        }
        self.seen.insert(key, Seen::Done(ack, Instant::now()));
    }

    fn closed(&mut self, conn: u64, why: Option<String>) {
        if let Some(why) = why {
            tracing::warn!(conn, why, "bad message; closing the connection");
            self.send(conn, &Ack::new("unknown", None, Err(why)));
        }
        if let Some(c) = self.conns.remove(&conn)
            && let Some(name) = c.child
            && let Some(child) = self.children.get_mut(&name)
            && child.conn == Some(conn)
        {
            child.conn = None;
        }
    }

    fn message(&mut self, conn: u64, body: &[u8]) {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                self.send(
                    conn,
                    &Ack::new(
                        "unknown",
                        None,
                        Err("a message must be a JSON object".into()),
                    ),
                );
                return;
            }
            Err(e) => {
                self.send(
                    conn,
                    &Ack::new("unknown", None, Err(format!("malformed message: {e}"))),
                );
                return;
            }
        };
        let kind = value.get("type").and_then(Value::as_str).map(String::from);
        let child = self.conns.get(&conn).and_then(|c| c.child);
        match (kind.as_deref(), child) {
            (Some("hello"), None) => self.hello(conn, &value),
            (Some("ack"), Some(name)) => self.child_ack(name, value),
            (Some("capture_status" | "detector_status"), Some(name)) => {
                self.child_status(name, value);
            }
            (Some("detection"), Some(ProcessName::Detector)) => {
                // Straight on to orion-control, bytes unchanged.
                if let Some(control) = self.control_conn() {
                    self.send_raw(control, body.to_vec());
                }
            }
            (Some(_), Some(_)) => {}
            _ => self.request(conn, value),
        }
    }

    fn hello(&mut self, conn: u64, value: &Value) {
        let name = value.get("name").and_then(Value::as_str).unwrap_or("");
        let peer = self.conns.get(&conn).and_then(|c| c.peer_pid);
        let Ok(name) = name.parse::<ProcessName>() else {
            self.send(
                conn,
                &Ack::new("hello", None, Err(format!("unknown process {name:?}"))),
            );
            self.conns.remove(&conn);
            return;
        };
        // Only the process oriond started under that name may speak for it.
        let matches = self
            .children
            .get(&name)
            .is_some_and(|c| c.pid.is_some() && c.pid == peer && c.conn.is_none());
        if !matches {
            tracing::warn!(%name, ?peer, "hello from a process oriond did not start; closing");
            self.send(
                conn,
                &Ack::new(
                    "hello",
                    None,
                    Err(format!("pid {peer:?} is not oriond's {name}")),
                ),
            );
            self.conns.remove(&conn);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.child = Some(name);
        }
        if let Some(c) = self.children.get_mut(&name) {
            c.conn = Some(conn);
        }
        if name == ProcessName::Control {
            self.ready(name);
            self.push_status();
        }
    }

    fn child_status(&mut self, name: ProcessName, value: Value) {
        let ready = match name {
            ProcessName::Capture => true,
            ProcessName::Detector => {
                value.get("state").and_then(Value::as_str) != Some("starting_worker")
            }
            ProcessName::Control | ProcessName::Broker => false,
        };
        let changed = self
            .children
            .get(&name)
            .and_then(|c| c.last_status.as_ref())
            .map(|old| old.get("state") != value.get("state"))
            .unwrap_or(true);
        if let Some(c) = self.children.get_mut(&name) {
            c.last_status = Some(value);
        }
        if ready {
            self.ready(name);
        }
        if changed {
            self.push_status();
        }
    }

    fn child_ack(&mut self, name: ProcessName, value: Value) {
        let Ok(ack) = serde_json::from_value::<Ack>(value) else {
            tracing::warn!(%name, "unreadable ack");
            return;
        };
        let id = ack
            .request_id
            .as_deref()
            .and_then(|id| id.strip_prefix("oriond-"))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(pending) = id.and_then(|id| self.pending.remove(&id)) else {
            tracing::debug!(%name, "ack for nothing pending");
            return;
        };
        self.settle(pending, ack.into_result());
    }

    /// A child answered (or did not): commit the desired state on success, answer the
    /// requester, and count down a re-application.
    fn settle(&mut self, pending: Pending, result: Result<Value, String>) {
        if pending.reapply {
            if let Err(e) = &result {
                tracing::error!(child = %pending.child, action = pending.action.name(), error = e, "re-applying the desired state failed");
            }
            if let Some(c) = self.children.get_mut(&pending.child) {
                c.applying = c.applying.saturating_sub(1);
            }
            self.maybe_running(pending.child);
            return;
        }
        // The ack first: the status the change causes follows it.
        let ok = result.is_ok();
        if let Some(reply) = &pending.reply {
            self.answer(reply, result);
        }
        if ok && self.desired.apply(&pending.action) {
            self.persist();
            self.push_status();
        }
    }

    fn fail_pending(&mut self, name: ProcessName, why: &str) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.child == name)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                self.settle(p, Err(why.to_string()));
            }
        }
    }

    fn control_conn(&self) -> Option<u64> {
        self.children
            .get(&ProcessName::Control)
            .and_then(|c| c.conn)
    }

    /// Tells orion-control the status changed (it publishes the retained status).
    fn push_status(&mut self) {
        if let Some(control) = self.control_conn() {
            let status = json!({"type": "status", "status": self.status()});
            self.send(control, &status);
        }
    }

    /// Saves the desired state in the background (coalesced; see `persist`).
    fn persist(&self) {
        if let Some(p) = &self.persister {
            p.save(&self.desired, &self.config);
        }
    }

    // ---- requests ---------------------------------------------------------------------------

    fn request(&mut self, conn: u64, value: Value) {
        let name = value.get("command").and_then(Value::as_str).unwrap_or("");
        if matches!(
            name,
            "process_status" | "start_process" | "stop_process" | "tail_process" | "reload_config"
        ) {
            let request_id = value
                .get("request_id")
                .and_then(Value::as_str)
                .map(|s| s.chars().take(command::MAX_REQUEST_ID).collect());
            let reply = Reply {
                conn,
                command: name.to_string(),
                request_id,
                dedupe: None,
            };
            let params = value.get("params").cloned().unwrap_or(Value::Null);
            self.supervisor_request(reply, &params);
            return;
        }
        let cmd = command::parse_value(value);
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
        if let Some(key) = dedupe {
            match self.seen.get_mut(&key) {
                Some(Seen::Done(ack, _)) => {
                    tracing::info!(
                        request_id = key,
                        "repeated request answered again, not applied"
                    );
                    let ack = ack.clone();
                    return self.send(conn, &ack);
                }
                Some(Seen::InFlight(waiting)) => {
                    waiting.push(reply);
                    return;
                }
                None => {
                    self.seen.insert(key, Seen::InFlight(Vec::new()));
                }
            }
        }
        let action = match cmd.action {
            Ok(a) => a,
            Err(e) => return self.answer(&reply, Err(e)),
        };
        match action {
            Action::GetStatus => {
                let status = self.status();
                self.answer(&reply, Ok(status));
            }
            Action::GetRois => {
                let rois = self.desired.rois.as_ref().map_or(&[][..], |r| r.rois());
                let data = json!({"rois": rois});
                self.answer(&reply, Ok(data));
            }
            Action::GetAutoFocus => {
                let data = json!({"enabled": self.desired.auto_focus, "params": self.desired.auto_focus_params});
                self.answer(&reply, Ok(data));
            }
            Action::SetRate(rate) => {
                let capture_running = self.state_of(ProcessName::Capture) == Some(State::Running);
                if rate == self.desired.rate_hz && capture_running {
                    return self
                        .answer(&reply, Ok(json!({"rate_hz": rate.hz(), "unchanged": true})));
                }
                let rollback = self.desired.clone();
                self.desired.rate_hz = rate;
                self.persist();
                self.waiters.push(Waiter {
                    name: ProcessName::Capture,
                    until: Until::Running,
                    reply,
                    rollback: Some(rollback),
                });
                self.restart(ProcessName::Capture);
            }
            Action::RestartProcess(name) => {
                if !self.children.contains_key(&name) {
                    return self.answer(
                        &reply,
                        Err(format!("{name} is not managed (disabled in the config)")),
                    );
                }
                if self.conns.get(&conn).and_then(|c| c.child) == Some(name) {
                    // The requester is the process itself: answer before it goes.
                    self.answer(&reply, Ok(json!({"restarting": name})));
                } else {
                    self.waiters.push(Waiter {
                        name,
                        until: Until::Running,
                        reply,
                        rollback: None,
                    });
                }
                self.restart(name);
            }
            Action::Shutdown => {
                self.answer(&reply, Ok(json!({"shutting_down": true})));
                self.begin_shutdown();
            }
            action => self.detector_request(reply, action),
        }
    }

    fn detector_request(&mut self, reply: Reply, action: Action) {
        let name = ProcessName::Detector;
        let reachable = self
            .children
            .get(&name)
            .is_some_and(|c| c.conn.is_some() && c.ready);
        if reachable {
            if let Err(e) = self.forward(name, action, Some(reply.clone()), false) {
                self.answer(&reply, Err(e));
            }
            return;
        }
        let state = self.state_of(name).map_or("not managed", State::as_str);
        // Pure settings are kept and applied when the detector is back; a model load or a
        // question needs the detector itself.
        let deferrable = matches!(
            action,
            Action::Pause
                | Action::Resume
                | Action::SetRois(_)
                | Action::ClearRois
                | Action::SetAutoFocus(_)
                | Action::EnableAutoFocus
                | Action::DisableAutoFocus
        );
        if deferrable && self.children.contains_key(&name) {
            self.answer(
                &reply,
                Ok(json!({"deferred": true, "detector": state, "note": "applied when the detector is RUNNING again"})),
            );
            if self.desired.apply(&action) {
                self.persist();
                self.push_status();
            }
        } else {
            self.answer(
                &reply,
                Err(format!(
                    "the detector is {state}; try again when it is RUNNING"
                )),
            );
        }
    }

    /// Sends `action` to child `name`; its ack settles the request.
    fn forward(
        &mut self,
        name: ProcessName,
        action: Action,
        reply: Option<Reply>,
        reapply: bool,
    ) -> Result<(), String> {
        let conn = self
            .children
            .get(&name)
            .and_then(|c| c.conn)
            .ok_or_else(|| format!("{name} is not connected"))?;
        let id = self.next_request;
        self.next_request += 1;
        let timeout = if matches!(action, Action::SetModelSize(_)) {
            MODEL_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let request = action.to_request(Some(&format!("oriond-{id}")));
        self.pending.insert(
            id,
            Pending {
                reply,
                child: name,
                action,
                reapply,
            },
        );
        self.send(conn, &request);
        self.after(timeout, Timer::Request(id));
        Ok(())
    }

    fn supervisor_request(&mut self, reply: Reply, params: &Value) {
        let name = params.get("name").and_then(Value::as_str);
        let process = name.map(|n| {
            n.parse::<ProcessName>()
                .map_err(|e| format!("params.name: {e}"))
                .and_then(|p| {
                    if self.children.contains_key(&p) {
                        Ok(p)
                    } else {
                        Err(format!(
                            "params.name: {p} is not managed (disabled in the config)"
                        ))
                    }
                })
        });
        match (reply.command.as_str(), process) {
            ("process_status", None) => {
                let status = self.status();
                self.answer(&reply, Ok(status));
            }
            ("reload_config", _) => {
                let result = self.reload_inner();
                self.answer(&reply, result.map(|changed| json!({"restarted": changed})));
            }
            (_, Some(Err(e))) => self.answer(&reply, Err(e)),
            (_, None) => self.answer(
                &reply,
                Err("params.name must be broker, control, detector or capture".into()),
            ),
            ("process_status", Some(Ok(p))) => {
                let data = self
                    .children
                    .get(&p)
                    .map(Child::status)
                    .unwrap_or(Value::Null);
                self.answer(&reply, Ok(json!({"processes": [data]})));
            }
            ("start_process", Some(Ok(p))) => {
                if self.state_of(p) == Some(State::Running) {
                    return self.answer(&reply, Ok(json!({"already": "RUNNING"})));
                }
                if let Some(c) = self.children.get_mut(&p) {
                    // An operator's start clears FATAL and the retry count.
                    c.retries = 0;
                }
                self.waiters.push(Waiter {
                    name: p,
                    until: Until::Running,
                    reply,
                    rollback: None,
                });
                if !matches!(self.state_of(p), Some(State::Starting | State::Stopping)) {
                    if let Some(c) = self.children.get_mut(&p) {
                        c.generation += 1;
                        c.state = State::Stopped;
                    }
                    self.start(p);
                }
            }
            ("stop_process", Some(Ok(p))) => {
                self.waiters.push(Waiter {
                    name: p,
                    until: Until::Stopped,
                    reply,
                    rollback: None,
                });
                self.stop(p);
            }
            ("tail_process", Some(Ok(p))) => {
                let offset = params.get("offset").and_then(Value::as_u64);
                let bytes = params
                    .get("bytes")
                    .and_then(Value::as_u64)
                    .map_or(1600, |b| (b as usize).min(TAIL_MAX));
                let (text, next) = self
                    .children
                    .get(&p)
                    .map(|c| c.log.read(offset, bytes))
                    .unwrap_or_default();
                self.answer(&reply, Ok(json!({"text": text, "offset": next})));
            }
            _ => self.answer(&reply, Err("unknown command".into())),
        }
    }

    fn resolve_waiters(&mut self, name: ProcessName, reached: State, why: &str) {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            let done = w.name == name
                && match (w.until, reached) {
                    (Until::Running, State::Running | State::Fatal) => true,
                    (Until::Running, State::Stopped) => !self.restart_after_stop.contains(&name),
                    (Until::Stopped, State::Stopped | State::Fatal) => true,
                    _ => false,
                };
            if !done {
                i += 1;
                continue;
            }
            let w = self.waiters.remove(i);
            let ok = match w.until {
                Until::Running => reached == State::Running,
                Until::Stopped => true,
            };
            let result = if ok {
                let pid = self.children.get(&name).and_then(|c| c.pid);
                let mut data = json!({"name": name, "state": reached, "pid": pid});
                if w.reply.command == "set_inference_rate" {
                    data["rate_hz"] = json!(self.desired.rate_hz.hz());
                }
                Ok(data)
            } else {
                if let Some(old) = w.rollback {
                    self.desired = old;
                    self.persist();
                }
                Err(format!("{name} is {}: {why}", reached.as_str()))
            };
            self.answer(&w.reply, result);
        }
    }

    fn state_of(&self, name: ProcessName) -> Option<State> {
        self.children.get(&name).map(|c| c.state)
    }

    pub fn status(&self) -> Value {
        let processes: Vec<Value> = self.children.values().map(Child::status).collect();
        let last = |n| self.children.get(&n).and_then(|c| c.last_status.clone());
        json!({
            "instance_id": self.config.instance_id,
            "room_id": self.config.room_id,
            "oriond": {
                "pid": std::process::id(),
                "uptime_s": self.started.elapsed().as_secs_f64(),
                "version": env!("CARGO_PKG_VERSION"),
            },
            "processes": processes,
            "stream": last(ProcessName::Capture),
            "detector": last(ProcessName::Detector),
            "desired": self.desired,
            "versions": {"orion": env!("CARGO_PKG_VERSION")},
        })
    }

    // ---- configuration reload ---------------------------------------------------------------

    fn reload(&mut self) {
        match self.reload_inner() {
            Ok(restarted) => tracing::info!(?restarted, "config reloaded"),
            Err(e) => tracing::error!(error = e, "config not reloaded; keeping the running one"),
        }
    }

    /// Re-reads the config file and restarts the children whose settings changed. Settings
    /// that shape the ring or the socket need an oriond restart and make the reload fail.
    fn reload_inner(&mut self) -> Result<Vec<ProcessName>, String> {
        let new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        let old = &self.config;
        let fixed = [
            ("instance_id", old.instance_id != new.instance_id),
            ("stream.width", old.stream.width != new.stream.width),
            ("stream.height", old.stream.height != new.stream.height),
            ("ring.slots", old.ring.slots != new.ring.slots),
            (
                "supervisor.socket_dir",
                old.supervisor.socket_dir != new.supervisor.socket_dir,
            ),
            (
                "supervisor.state_dir",
                old.supervisor.state_dir != new.supervisor.state_dir,
            ),
            ("mqtt.enabled", old.mqtt.enabled != new.mqtt.enabled),
        ];
        if let Some((key, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(format!(
                "{key} cannot change while oriond runs; restart oriond"
            ));
        }
        let mut desired = self.desired.clone();
        desired.rebase(&Desired::baseline(old), &Desired::baseline(&new));
        let mut restart = Vec::new();
        for &name in self.children.keys() {
            let before = children::spec(name, old, &self.config_path, &self.desired);
            let after = children::spec(name, &new, &self.config_path, &desired);
            if let Err(why) = &after {
                return Err(why.clone());
            }
            let mqtt_changed = name == ProcessName::Control
                && (old.mqtt != new.mqtt || old.room_id != new.room_id);
            if before != after || mqtt_changed {
                restart.push(name);
            }
        }
        self.config = new;
        self.desired = desired;
        self.persist();
        for &name in &restart {
            if matches!(
                self.state_of(name),
                Some(State::Running | State::Starting | State::Backoff)
            ) {
                self.restart(name);
            }
        }
        self.push_status();
        Ok(restart)
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

/// Writes each file (0600, through a new file: a symlink planted there is not followed).
fn write_files(files: &[(PathBuf, String)]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for (path, text) in files {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => "unknown".into(),
    }
}

fn truncate(line: &mut String, max: usize) {
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str(" [truncated]");
    }
}

/// Half of systemd's watchdog interval, if it set one.
fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

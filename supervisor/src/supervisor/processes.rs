//! Children's lifecycles: every change of state goes through `Lifecycle::step`; this file
//! carries out the actions it returns (spawn, signal, schedule) and the consequences a
//! state has for the rest of oriond — the boot order, shutdown, requests waiting for a
//! state, the desired state re-applied to a detector that just started.

use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use orion_protocol::ProcessName;
use orion_protocol::message::Message;

use super::Supervisor;
use crate::child::Report;
use crate::events::{Timer, after};
use crate::lifecycle::{Effect, Input, State};
use crate::registry::Part;
use crate::spawn;

impl Supervisor {
    /// Feeds `input` to `name`'s lifecycle and carries out what it asks.
    pub(super) fn drive(&mut self, name: ProcessName, input: Input) {
        let policy = self.policy();
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        let before = child.state();
        let (next, effects) = child.life.step(&input, &policy);
        child.life = next;
        let after_state = child.state();
        if before != after_state {
            match after_state {
                State::Fatal | State::Backoff => tracing::warn!(
                    %name,
                    state = after_state.as_str(),
                    reason = child.life.reason.as_deref().unwrap_or(""),
                    "state"
                ),
                _ => tracing::info!(
                    %name,
                    pid = self.registry.serving(name).map(|inc| inc.pid),
                    state = after_state.as_str(),
                    "state"
                ),
            }
        }
        for effect in effects {
            self.carry_out_effect(name, effect);
        }
        if before != after_state {
            self.push_status();
        }
    }

    fn carry_out_effect(&mut self, name: ProcessName, effect: Effect) {
        let Some(generation) = self.children.get(&name).map(|c| c.generation) else {
            return;
        };
        let pid = self.registry.serving(name).map(|inc| inc.pid);
        match effect {
            Effect::Spawn => self.spawn(name),
            Effect::Terminate => {
                if let Some(pid) = pid {
                    spawn::signal(pid, Signal::SIGTERM);
                }
                let wait = Duration::from_secs_f64(self.config.supervisor.stopwaitsecs);
                after(&self.events, wait, Timer::Kill { name, generation });
            }
            Effect::Kill => {
                if let Some(pid) = pid {
                    tracing::warn!(%name, pid, "SIGKILL");
                    spawn::signal(pid, Signal::SIGKILL);
                }
            }
            Effect::RetryIn(delay) => after(&self.events, delay, Timer::Retry { name, generation }),
            Effect::Announce(state) => self.announce(name, state),
        }
    }

    fn spawn(&mut self, name: ProcessName) {
        if name == ProcessName::Capture && self.successor.is_some() && self.adopt_successor() {
            return;
        }
        if name == ProcessName::Detector && self.standby.is_some() && self.adopt_standby() {
            return;
        }
        if !self.children.contains_key(&name) {
            return;
        }
        let generation = self.next_generation();
        let spawned = self.start_process(name, Part::Serving, generation, &[]);
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        child.generation = generation;
        match spawned {
            Ok(pid) => {
                child.spawned(generation);
                tracing::info!(%name, pid, "started");
                let timeout = Duration::from_secs_f64(self.config.supervisor.ready_timeout_s);
                after(
                    &self.events,
                    timeout,
                    Timer::ReadyTimeout { name, generation },
                );
            }
            Err(why) => {
                tracing::error!(%name, why, "cannot start");
                self.drive(name, Input::SpawnFailed(why));
            }
        }
    }

    /// Starts `name` as `generation` in `part` from the config and desired state, with
    /// `extra` arguments, and registers it: its pid, or why not.
    pub(super) fn start_process(
        &mut self,
        name: ProcessName,
        part: Part,
        generation: u64,
        extra: &[&str],
    ) -> Result<u32, String> {
        let mut spec = crate::spec::spec(name, &self.config, &self.config_path, &self.desired)?;
        spec.args.extend(extra.iter().map(|a| a.to_string()));
        let pid = spawn::spawn(
            name,
            generation,
            &spec,
            &self.ring,
            &self.socket_path,
            &self.events,
        )?;
        self.registry
            .spawned(name, part, pid, generation, Instant::now());
        Ok(pid)
    }

    /// A state others wait for was reached.
    fn announce(&mut self, name: ProcessName, state: State) {
        self.resolve_waiters(name, state);
        match state {
            State::Running | State::Fatal => self.boot_progress(name),
            State::Stopped => {
                if let Some(i) = self.restart_after_stop.iter().position(|n| *n == name) {
                    self.restart_after_stop.remove(i);
                    self.start_fresh(name);
                }
                self.shutdown_next();
            }
            _ => self.shutdown_next(),
        }
    }

    /// An operator's (or a restart's) start: failed starts forgotten.
    pub(super) fn start_fresh(&mut self, name: ProcessName) {
        if let Some(c) = self.children.get_mut(&name) {
            c.life.retries = 0;
        }
        self.drive(name, Input::Start);
    }

    pub(super) fn stop(&mut self, name: ProcessName) {
        self.drive(name, Input::Stop);
    }

    /// An operator's stop: final for the process. A restart still pending (a rate change
    /// or a reload) and a capture successor in standby are called off, so nothing brings
    /// it back afterwards; the requests that waited for them are answered as failed.
    pub(super) fn stop_for_good(&mut self, name: ProcessName) {
        self.restart_after_stop.retain(|n| *n != name);
        if name == ProcessName::Capture {
            self.drop_successor("the capture was stopped by an operator");
        }
        self.stop(name);
    }

    pub(super) fn restart(&mut self, name: ProcessName) {
        match self.state_of(name) {
            Some(State::Starting | State::Running) => {
                self.restart_after_stop.push(name);
                self.stop(name);
            }
            Some(State::Stopping) => self.restart_after_stop.push(name),
            Some(_) => self.start_fresh(name),
            None => {}
        }
    }

    pub(super) fn exited(
        &mut self,
        name: ProcessName,
        generation: u64,
        status: &str,
        reaped: SystemTime,
    ) {
        // It leaves the registry, its connection with it. An understudy dropped earlier
        // left already: its exit is nobody's.
        let Some(inc) = self.registry.ended(generation) else {
            return;
        };
        match (inc.name, inc.part) {
            (ProcessName::Capture, Part::Understudy) => return self.successor_exited(status),
            (_, Part::Understudy) => return self.standby_exited(&inc, status),
            (_, Part::Serving) => {}
        }
        let uptime = inc.started.elapsed();
        if name == ProcessName::Capture {
            // A reaped writer's pid may be recycled; it must never look like a live writer.
            self.ring.clear_writer(inc.pid);
        }
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        child.ended(status, reaped);
        tracing::info!(%name, status, uptime_s = uptime.as_secs_f64(), "exited");
        self.fail_pending(name, &format!("{name} exited ({status}) before answering"));
        self.drive(
            name,
            Input::Exited {
                status: status.to_string(),
                uptime,
            },
        );
    }

    pub(super) fn on_child_timer(&mut self, name: ProcessName, generation: u64, input: Input) {
        if self
            .children
            .get(&name)
            .is_some_and(|c| c.generation == generation)
        {
            self.drive(name, input);
        }
    }

    /// A line of a child's output: into oriond's log with its level and the child's name
    /// (`crate::relay`), and into the buffer `orionctl tail` reads. The broker, which
    /// cannot say hello, says it listens.
    pub(super) fn output(&mut self, name: ProcessName, line: &str) {
        crate::relay::line(name, line);
        if let Some(c) = self.children.get_mut(&name) {
            c.log.push_line(line);
        }
        if name == ProcessName::Broker && crate::spec::broker_ready_line(line) {
            self.child_ready(name);
        }
    }

    /// A capture, detector or orion-control report: kept for the status (a change of the
    /// capture's or detector's state is news; orion-control's counters ride along, as they
    /// come with every status it publishes).
    pub(super) fn child_status(&mut self, name: ProcessName, m: Message) {
        let report = match m {
            Message::CaptureStatus(s) => Report::Capture(s),
            Message::DetectorStatus(s) => Report::Detector(Box::new(s)),
            Message::ControlStatus(s) => {
                if let Some(c) = self.children.get_mut(&name) {
                    c.last_status = Some(Report::Control(Box::new(s)));
                }
                return;
            }
            _ => return,
        };
        let changed = self
            .children
            .get(&name)
            .and_then(|c| c.last_status.as_ref())
            .is_none_or(|old| old.state() != report.state());
        if let Some(c) = self.children.get_mut(&name) {
            c.last_status = Some(report);
        }
        if changed {
            self.push_status();
        }
    }

    /// `name` said it is ready (`Message::Ready`; the broker: its log line): bring it to
    /// the desired state, then it is RUNNING.
    pub(super) fn child_ready(&mut self, name: ProcessName) {
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        if child.state() != State::Starting || child.ready {
            return;
        }
        child.ready = true;
        if name == ProcessName::Detector {
            if self.stand_ins.shed_note().is_some() {
                self.tell_detector_stand_ins();
            }
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

    pub(super) fn maybe_running(&mut self, name: ProcessName) {
        if self
            .children
            .get(&name)
            .is_some_and(|c| c.state() == State::Starting && c.ready && c.applying == 0)
        {
            self.drive(name, Input::Ready);
        }
    }

    // ---- boot and shutdown ----------------------------------------------------------------

    pub(super) fn boot_next(&mut self) {
        while let Some(&name) = self.boot.front() {
            if self.shutdown.is_some() {
                self.boot.clear();
                return;
            }
            self.start_fresh(name);
            match self.state_of(name) {
                Some(State::Starting | State::Backoff) => return,
                _ => {
                    self.boot.pop_front();
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!("all children started");
    }

    /// The boot sequence moves on once `name` is RUNNING or given up on.
    fn boot_progress(&mut self, name: ProcessName) {
        if self.boot.front() == Some(&name) {
            self.boot.pop_front();
            self.boot_next();
        }
    }

    pub(super) fn begin_shutdown(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!("shutting down");
        self.drop_successor("oriond is shutting down");
        self.drop_standby("oriond is shutting down");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        self.boot.clear();
        self.restart_after_stop.clear();
        self.shutdown = Some(self.children.keys().rev().copied().collect());
        self.shutdown_next();
    }

    /// Stops the next child in reverse start order once the one before is down.
    fn shutdown_next(&mut self) {
        loop {
            let Some(&name) = self.shutdown.as_ref().and_then(|q| q.front()) else {
                return;
            };
            match self.state_of(name) {
                Some(State::Stopping) => return,
                Some(State::Starting | State::Running) => {
                    self.stop(name);
                    return;
                }
                _ => {
                    if let Some(q) = self.shutdown.as_mut() {
                        q.pop_front();
                    }
                }
            }
        }
    }
}

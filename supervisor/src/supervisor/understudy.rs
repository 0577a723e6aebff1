//! What the capture successor (`handover`) and the standby detector (`standby`) have in
//! common: a process oriond starts beside a child to take its place, registered as the
//! child's [`Part::Understudy`](crate::registry::Part) (its pid, connection and start time
//! are in the registry, like any incarnation's). Its messages go to its own handler, not
//! the child's; its exit leaves the registry as any other; and when the child is to be
//! started again, it is adopted instead: it becomes the child's serving incarnation and is
//! told `take_over`.

use std::time::Duration;

use nix::sys::signal::Signal;
use orion_protocol::ProcessName;
use orion_protocol::message::Message;

use super::Supervisor;
use crate::events::{Timer, after};
use crate::registry::Incarnation;
use crate::spawn;

impl Supervisor {
    /// The understudy of `generation`, while it runs.
    pub(super) fn understudy(&self, generation: u64) -> Option<&Incarnation> {
        self.registry.by_generation(generation)
    }

    /// The understudy of `generation` has said hello.
    pub(super) fn understudy_connected(&self, generation: u64) -> bool {
        self.understudy(generation)
            .is_some_and(|inc| inc.conn.is_some())
    }

    /// How long ago the understudy of `generation` started.
    pub(super) fn understudy_age(&self, generation: u64) -> Duration {
        self.understudy(generation)
            .map_or(Duration::ZERO, |inc| inc.started.elapsed())
    }

    /// SIGKILLs the understudy of `generation`; it leaves the registry now, so its exit,
    /// when reaped, is nobody's. Its pid, if it ran.
    pub(super) fn kill_understudy(&mut self, generation: u64) -> Option<u32> {
        let inc = self.registry.ended(generation)?;
        spawn::signal(inc.pid, Signal::SIGKILL);
        Some(inc.pid)
    }

    /// Makes the understudy of `generation` the incarnation of `name` and tells it to take
    /// over; like a spawn, it must report ready within the ready timeout.
    pub(super) fn adopt(&mut self, name: ProcessName, generation: u64) {
        let conn = self.registry.promote(generation).and_then(|inc| inc.conn);
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        child.spawned(generation);
        if let Some(conn) = conn {
            self.registry.send(conn, &Message::TakeOver);
        }
        let timeout = Duration::from_secs_f64(self.config.supervisor.ready_timeout_s);
        after(
            &self.events,
            timeout,
            Timer::ReadyTimeout { name, generation },
        );
    }
}

//! What the capture successor (`handover`) and the standby detector (`standby`) have in
//! common: a process oriond starts beside a child to take its place. It is known by its
//! pid until it says hello as that child, then by its connection; its messages go to its
//! own handler, not the child's; its exit is told apart by its generation; and when the
//! child is to be started again, it is adopted instead: it becomes the child's incarnation
//! and is told `take_over`.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use orion_protocol::ProcessName;
use orion_protocol::message::Message;

use super::Supervisor;
use crate::events::{ConnId, Timer, after};
use crate::peers::Peers;
use crate::spawn;

pub(super) struct Understudy {
    pub pid: u32,
    pub generation: u64,
    pub conn: Option<ConnId>,
    pub started: Instant,
}

impl Understudy {
    pub fn new(pid: u32, generation: u64) -> Self {
        Self {
            pid,
            generation,
            conn: None,
            started: Instant::now(),
        }
    }

    /// A hello from a peer with `peer_pid` is this one's.
    fn claims(&self, peer_pid: Option<u32>) -> bool {
        self.conn.is_none() && peer_pid == Some(self.pid)
    }

    pub fn is(&self, conn: ConnId) -> bool {
        self.conn == Some(conn)
    }

    /// Forgets its connection (it exited, or is dropped).
    pub fn disconnect(&self, peers: &mut Peers) {
        if let Some(conn) = self.conn {
            peers.remove(conn);
        }
    }

    /// SIGKILLs it (its exit, when reaped, is recognised by its generation and ignored).
    pub fn kill(self, peers: &mut Peers) {
        self.disconnect(peers);
        spawn::signal(self.pid, Signal::SIGKILL);
    }
}

impl Supervisor {
    /// The understudy of `name`, if one runs.
    fn understudy_mut(&mut self, name: ProcessName) -> Option<&mut Understudy> {
        match name {
            ProcessName::Capture => self.successor.as_mut().map(|s| &mut s.understudy),
            ProcessName::Detector => self.standby.as_mut().map(|s| &mut s.understudy),
            _ => None,
        }
    }

    /// Whose understudy is on `conn`, if one is.
    pub(super) fn understudy_on(&self, conn: ConnId) -> Option<ProcessName> {
        if self
            .successor
            .as_ref()
            .is_some_and(|s| s.understudy.is(conn))
        {
            Some(ProcessName::Capture)
        } else if self.standby.as_ref().is_some_and(|s| s.understudy.is(conn)) {
            Some(ProcessName::Detector)
        } else {
            None
        }
    }

    /// `conn` says hello as `name`: the pid it must have if it is `name`'s understudy.
    pub(super) fn understudy_hello(&mut self, name: ProcessName, conn: ConnId) -> Option<u32> {
        let peer = self.peers.pid_of(conn);
        self.understudy_mut(name)
            .filter(|u| u.claims(peer))
            .map(|u| u.pid)
    }

    /// The hello of `name`'s understudy on `conn` was accepted.
    pub(super) fn understudy_connected(&mut self, name: ProcessName, conn: ConnId) {
        if let Some(u) = self.understudy_mut(name) {
            u.conn = Some(conn);
        }
    }

    pub(super) fn understudy_closed(&mut self, conn: ConnId) {
        for name in [ProcessName::Capture, ProcessName::Detector] {
            if let Some(u) = self.understudy_mut(name).filter(|u| u.is(conn)) {
                u.conn = None;
            }
        }
    }

    /// Makes `u` the incarnation of `name` and tells it to take over; like a spawn, it
    /// must report ready within the ready timeout.
    pub(super) fn adopt(&mut self, name: ProcessName, u: &Understudy) {
        let Some(child) = self.children.get_mut(&name) else {
            return;
        };
        child.generation = u.generation;
        // Its connection is now the child's: found by the adopted pid (`Peers::conn_of`).
        child.spawned(u.pid);
        if let Some(conn) = u.conn {
            self.peers.send(conn, &Message::TakeOver);
        }
        let timeout = Duration::from_secs_f64(self.config.supervisor.ready_timeout_s);
        after(
            &self.events,
            timeout,
            Timer::ReadyTimeout {
                name,
                generation: u.generation,
            },
        );
    }
}

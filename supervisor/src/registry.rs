//! Who is who on oriond's socket: the one place that maps a process oriond started (an
//! *incarnation*: name, part, pid, generation, start time) to its connection, and a
//! connection to its peer (the socket peer's pid, whether it descends from oriond, its
//! outbox). A connection speaks for an incarnation only after a hello whose pid is the
//! socket peer's (`SO_PEERCRED`) and the one oriond spawned under that name.
//!
//! Every change happens here once: a connection closed or let go (a peer that does not
//! read) leaves its incarnation unreachable at once; a reaped process leaves the registry
//! with its connection. Nothing else keeps a pid, a generation-to-pid or a connection-to-
//! child mapping; the lifecycle (`crate::lifecycle`) keeps only the generation its timers
//! are stamped with. Each connection's [`Role`] decides what it may send
//! (`crate::authority`).

use std::collections::HashMap;
use std::time::Instant;

use orion_protocol::ProcessName;
use orion_protocol::message::{self, Message};

use crate::authority::Role;
use crate::events::{ConnId, Outbox};

/// The place an incarnation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The child itself: the one its lifecycle is about.
    Serving,
    /// Started beside the child to take its place (the capture successor, the standby
    /// detector); adopted, it becomes [`Part::Serving`].
    Understudy,
}

/// One process oriond started.
#[derive(Debug, Clone, PartialEq)]
pub struct Incarnation {
    pub name: ProcessName,
    pub part: Part,
    pub pid: u32,
    /// Unique per spawn: its exit and its timers are told apart by it.
    pub generation: u64,
    /// The connection it said hello on, while that is open.
    pub conn: Option<ConnId>,
    pub started: Instant,
}

struct Peer {
    outbox: Outbox,
    pid: Option<u32>,
    /// The peer is a process oriond started, or one of theirs (never an operator).
    descendant: bool,
}

#[derive(Default)]
pub struct Registry {
    peers: HashMap<ConnId, Peer>,
    /// A handful at most: each child and its understudy.
    incarnations: Vec<Incarnation>,
}

impl Registry {
    // ---- incarnations ---------------------------------------------------------------------

    /// oriond started `name` as `pid`.
    pub fn spawned(
        &mut self,
        name: ProcessName,
        part: Part,
        pid: u32,
        generation: u64,
        now: Instant,
    ) {
        self.incarnations.push(Incarnation {
            name,
            part,
            pid,
            generation,
            conn: None,
            started: now,
        });
    }

    /// The process of `generation` ended (reaped) or was given up (killed): it leaves the
    /// registry, and its connection is let go.
    pub fn ended(&mut self, generation: u64) -> Option<Incarnation> {
        let i = self
            .incarnations
            .iter()
            .position(|inc| inc.generation == generation)?;
        let inc = self.incarnations.remove(i);
        if let Some(conn) = inc.conn {
            self.peers.remove(&conn);
        }
        Some(inc)
    }

    /// The understudy of `generation` becomes its child's serving incarnation (adopted).
    /// The serving one it replaces has ended already; if not, it is no longer `name`'s.
    pub fn promote(&mut self, generation: u64) -> Option<&Incarnation> {
        let name = self.by_generation(generation)?.name;
        self.incarnations
            .retain(|inc| !(inc.name == name && inc.part == Part::Serving));
        let inc = self
            .incarnations
            .iter_mut()
            .find(|inc| inc.generation == generation)?;
        inc.part = Part::Serving;
        Some(inc)
    }

    pub fn by_generation(&self, generation: u64) -> Option<&Incarnation> {
        self.incarnations
            .iter()
            .find(|inc| inc.generation == generation)
    }

    /// `name`'s incarnation in `part`, if one runs.
    pub fn get(&self, name: ProcessName, part: Part) -> Option<&Incarnation> {
        self.incarnations
            .iter()
            .find(|inc| inc.name == name && inc.part == part)
    }

    /// The child `name` itself, if it runs.
    pub fn serving(&self, name: ProcessName) -> Option<&Incarnation> {
        self.get(name, Part::Serving)
    }

    /// The connection of `name`'s serving incarnation, if it is connected.
    pub fn conn_of(&self, name: ProcessName) -> Option<ConnId> {
        self.serving(name).and_then(|inc| inc.conn)
    }

    /// The incarnation that said hello on `conn`.
    pub fn on(&self, conn: ConnId) -> Option<&Incarnation> {
        self.incarnations.iter().find(|inc| inc.conn == Some(conn))
    }

    // ---- connections ----------------------------------------------------------------------

    /// A new connection from `pid`; `descendant`: a process oriond started, or one of
    /// theirs (see `crate::ipc`).
    pub fn accepted(&mut self, conn: ConnId, outbox: Outbox, pid: Option<u32>, descendant: bool) {
        self.peers.insert(
            conn,
            Peer {
                outbox,
                pid,
                descendant,
            },
        );
    }

    /// Who is on `conn`; `None` for a connection oriond let go (or never had).
    pub fn role(&self, conn: ConnId) -> Option<Role> {
        let peer = self.peers.get(&conn)?;
        Some(match (self.on(conn), peer.descendant) {
            (Some(inc), _) => Role::Child(inc.name),
            (None, true) => Role::Descendant,
            (None, false) => Role::Operator,
        })
    }

    /// Accepts `conn`'s hello as `name` if its socket peer is a process oriond started under
    /// that name and not yet connected; the part it holds.
    pub fn hello(&mut self, conn: ConnId, name: ProcessName) -> Result<Part, String> {
        let peer = self.peers.get(&conn).ok_or("no such connection")?;
        if self.on(conn).is_some() {
            return Err("this connection already said hello".into());
        }
        let pid = peer.pid;
        let inc = self
            .incarnations
            .iter_mut()
            .find(|inc| inc.name == name && Some(inc.pid) == pid && inc.conn.is_none())
            .ok_or_else(|| format!("pid {pid:?} is not oriond's {name}"))?;
        inc.conn = Some(conn);
        Ok(inc.part)
    }

    /// Lets go of `conn`: its outbox closes, ipc closes the socket and stops reading it,
    /// and the incarnation it spoke for is unreachable from now on.
    pub fn remove(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
        for inc in &mut self.incarnations {
            if inc.conn == Some(conn) {
                inc.conn = None;
            }
        }
    }

    pub fn connections(&self) -> usize {
        self.peers.len()
    }

    pub fn send(&mut self, conn: ConnId, message: &Message) {
        self.send_raw(conn, message::encode(message));
    }

    /// Sends bytes as they are (a request to a child, a detection passed through).
    pub fn send_raw(&mut self, conn: ConnId, body: Vec<u8>) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        if let Err(why) = peer.outbox.try_send(body) {
            tracing::warn!(
                conn,
                ?why,
                "peer does not read its messages; dropping the connection"
            );
            self.remove(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETECTOR: ProcessName = ProcessName::Detector;

    fn registry_with(conn: ConnId, peer_pid: u32) -> (Registry, crate::outbox::Drain) {
        let mut registry = Registry::default();
        let (tx, rx) = crate::outbox::outbox(1, 1024);
        registry.accepted(conn, tx, Some(peer_pid), true);
        (registry, rx)
    }

    #[test]
    fn only_the_spawned_pid_may_speak_for_a_child_once() {
        let (mut registry, mut rx) = registry_with(1, 42);
        let now = Instant::now();
        // Nobody spawned pid 42 yet: refused.
        assert!(registry.hello(1, DETECTOR).is_err());
        assert_eq!(registry.role(1), Some(Role::Descendant));
        registry.spawned(DETECTOR, Part::Serving, 7, 1, now);
        assert!(registry.hello(1, DETECTOR).is_err(), "another pid");
        registry.spawned(DETECTOR, Part::Understudy, 42, 2, now);
        assert!(
            registry.hello(1, ProcessName::Capture).is_err(),
            "another name"
        );
        assert_eq!(registry.hello(1, DETECTOR), Ok(Part::Understudy));
        assert_eq!(registry.role(1), Some(Role::Child(DETECTOR)));
        assert!(registry.hello(1, DETECTOR).is_err(), "one hello");
        // The serving detector (pid 7) has no connection; the understudy has this one.
        assert_eq!(registry.conn_of(DETECTOR), None);
        assert_eq!(registry.on(1).map(|i| i.generation), Some(2));
        // A peer that does not read is let go when its outbox is full; its incarnation is
        // unreachable at once and may not be claimed by another connection's stale hello.
        registry.send_raw(1, b"a".to_vec());
        assert_eq!(registry.connections(), 1);
        registry.send_raw(1, b"b".to_vec());
        assert_eq!(registry.connections(), 0);
        assert_eq!(registry.on(1), None);
        assert_eq!(registry.role(1), None, "a connection let go has no role");
        assert_eq!(rx.try_recv(), Some(b"a".to_vec()));
    }

    #[test]
    fn an_adopted_understudy_serves_and_an_exit_leaves_with_its_connection() {
        let (mut registry, _rx) = registry_with(5, 43);
        let now = Instant::now();
        registry.spawned(DETECTOR, Part::Serving, 42, 1, now);
        registry.spawned(DETECTOR, Part::Understudy, 43, 2, now);
        assert_eq!(registry.hello(5, DETECTOR), Ok(Part::Understudy));
        // The detector dies: it leaves; its stale generation finds nothing afterwards.
        assert_eq!(registry.ended(1).map(|i| i.pid), Some(42));
        assert_eq!(registry.ended(1), None);
        assert_eq!(registry.serving(DETECTOR), None);
        // The standby is adopted: it is the detector now, on the connection it had.
        assert_eq!(registry.promote(2).map(|i| i.part), Some(Part::Serving));
        assert_eq!(registry.conn_of(DETECTOR), Some(5));
        assert_eq!(registry.get(DETECTOR, Part::Understudy), None);
        // Its exit takes its connection with it.
        assert_eq!(registry.ended(2).map(|i| i.conn), Some(Some(5)));
        assert_eq!(registry.connections(), 0);
        assert_eq!(registry.conn_of(DETECTOR), None);
    }
}

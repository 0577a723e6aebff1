//! The peers on oriond's socket — children and clients (orionctl, orion-control) — and
//! who they are: a connection speaks for a child only after a hello whose pid is the
//! socket peer's (`SO_PEERCRED`) and the one oriond spawned under that name. Sending goes
//! through each peer's bounded outbox; a peer that does not read is let go. Each peer's
//! [`Role`] decides what it may send (`crate::authority`).

use std::collections::HashMap;

use orion_protocol::ProcessName;
use orion_protocol::message::{self, Message};

use crate::authority::Role;
use crate::events::{ConnId, Outbox};

struct Peer {
    outbox: Outbox,
    pid: Option<u32>,
    child: Option<ProcessName>,
    /// The peer is a process oriond started, or one of theirs (never an operator).
    descendant: bool,
}

#[derive(Default)]
pub struct Peers {
    peers: HashMap<ConnId, Peer>,
}

impl Peers {
    /// A new connection from `pid`; `descendant`: a process oriond started, or one of
    /// theirs (see `crate::ipc`).
    pub fn accepted(&mut self, conn: ConnId, outbox: Outbox, pid: Option<u32>, descendant: bool) {
        self.peers.insert(
            conn,
            Peer {
                outbox,
                pid,
                child: None,
                descendant,
            },
        );
    }

    /// Who is on `conn`; `None` for a connection oriond let go (or never had).
    pub fn role(&self, conn: ConnId) -> Option<Role> {
        let peer = self.peers.get(&conn)?;
        Some(match (peer.child, peer.descendant) {
            (Some(name), _) => Role::Child(name),
            (None, true) => Role::Descendant,
            (None, false) => Role::Operator,
        })
    }

    /// Lets go of `conn`: its outbox closes, ipc closes the socket and stops reading it.
    /// Returns the child it spoke for, if any.
    pub fn remove(&mut self, conn: ConnId) -> Option<ProcessName> {
        self.peers.remove(&conn).and_then(|p| p.child)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// The socket peer's pid (`SO_PEERCRED`).
    pub fn pid_of(&self, conn: ConnId) -> Option<u32> {
        self.peers.get(&conn).and_then(|p| p.pid)
    }

    /// The connection on which `pid` said hello as `name`: the one place that maps a child's
    /// incarnation to its connection (a connection let go, or closed, is gone from here at
    /// once, so the child is unreachable at once).
    pub fn conn_of(&self, name: ProcessName, pid: u32) -> Option<ConnId> {
        self.peers
            .iter()
            .find(|(_, p)| p.child == Some(name) && p.pid == Some(pid))
            .map(|(&conn, _)| conn)
    }

    /// The child `conn` speaks for.
    pub fn child_of(&self, conn: ConnId) -> Option<ProcessName> {
        self.peers.get(&conn).and_then(|p| p.child)
    }

    /// Accepts `conn`'s hello as child `name` if its socket peer is `expected` (the pid
    /// oriond spawned under that name).
    pub fn hello(
        &mut self,
        conn: ConnId,
        name: ProcessName,
        expected: Option<u32>,
    ) -> Result<(), String> {
        let peer = self.peers.get_mut(&conn).ok_or("no such connection")?;
        if peer.child.is_some() {
            return Err("this connection already said hello".into());
        }
        match (peer.pid, expected) {
            (Some(pid), Some(want)) if pid == want => {
                peer.child = Some(name);
                Ok(())
            }
            (pid, _) => Err(format!("pid {pid:?} is not oriond's {name}")),
        }
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
            self.peers.remove(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_spawned_pid_may_speak_for_a_child_once() {
        let mut peers = Peers::default();
        let (tx, mut rx) = crate::outbox::outbox(1, 1024);
        peers.accepted(1, tx, Some(42), false);
        // Another pid, or no pid at all, is refused.
        assert!(peers.hello(1, ProcessName::Detector, Some(7)).is_err());
        assert!(peers.hello(1, ProcessName::Detector, None).is_err());
        assert_eq!(peers.child_of(1), None);
        assert!(peers.hello(1, ProcessName::Detector, Some(42)).is_ok());
        assert_eq!(peers.child_of(1), Some(ProcessName::Detector));
        // The incarnation's connection, found by name and pid; a standby of the same name
        // (another pid) has its own.
        assert_eq!(peers.conn_of(ProcessName::Detector, 42), Some(1));
        assert_eq!(peers.conn_of(ProcessName::Detector, 43), None);
        assert_eq!(peers.conn_of(ProcessName::Capture, 42), None);
        assert!(
            peers.hello(1, ProcessName::Capture, Some(42)).is_err(),
            "one hello"
        );
        // A peer that does not read is let go when its outbox is full.
        peers.send_raw(1, b"a".to_vec());
        assert_eq!(peers.len(), 1);
        peers.send_raw(1, b"b".to_vec());
        assert_eq!(peers.len(), 0);
        assert_eq!(
            peers.conn_of(ProcessName::Detector, 42),
            None,
            "a connection let go leaves its child unreachable at once"
        );
        assert_eq!(rx.try_recv(), Some(b"a".to_vec()));
        assert!(peers.remove(1).is_none());
    }
}

//! Requests oriond has seen by id, so a command the broker redelivers (orion-control
//! restarted before acknowledging it) is answered again, never applied twice. Only the
//! `mqtt:` ids orion-control forwards are tracked; they are kept for a window (the age a
//! command may reach) and at most [`MAX`] of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use orion_protocol::Ack;

/// Ids kept at most (the oldest answered ones are forgotten first).
pub const MAX: usize = 4096;

enum Seen<T> {
    /// Being handled; these repeats wait for the same answer.
    InFlight(Vec<T>),
    /// Answered with this ack at this time.
    Done(Ack, Instant),
}

/// What to do with a request.
pub enum Begin {
    /// Not seen: handle it.
    New,
    /// A repeat of one being handled: it waits (the waiter is kept).
    Waiting,
    /// A repeat of one answered: send this again.
    Answered(Ack),
}

pub struct Dedupe<T> {
    seen: HashMap<String, Seen<T>>,
    window: Duration,
}

impl<T> Dedupe<T> {
    pub fn new(window: Duration) -> Self {
        Self {
            seen: HashMap::new(),
            window,
        }
    }

    pub fn begin(&mut self, key: &str, waiter: T) -> Begin {
        match self.seen.get_mut(key) {
            Some(Seen::Done(ack, _)) => Begin::Answered(ack.clone()),
            Some(Seen::InFlight(waiting)) => {
                waiting.push(waiter);
                Begin::Waiting
            }
            None => {
                self.seen
                    .insert(key.to_string(), Seen::InFlight(Vec::new()));
                Begin::New
            }
        }
    }

    /// `key` was answered with `ack`: returns the repeats that waited for it.
    pub fn finish(&mut self, key: &str, ack: &Ack) -> Vec<T> {
        let waiting = match self.seen.remove(key) {
            Some(Seen::InFlight(w)) => w,
            _ => Vec::new(),
        };
        let window = self.window;
        self.seen
            .retain(|_, s| !matches!(s, Seen::Done(_, at) if at.elapsed() > window));
        if self.seen.len() >= MAX {
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
        self.seen
            .insert(key.to_string(), Seen::Done(ack.clone(), Instant::now()));
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str) -> Ack {
        Ack::new(
            "pause_inference",
            Some(id.into()),
            Ok(serde_json::json!({})),
        )
    }

    #[test]
    fn repeats_wait_or_get_the_same_answer() {
        let mut d = Dedupe::new(Duration::from_secs(60));
        assert!(matches!(d.begin("a", 1), Begin::New));
        assert!(matches!(d.begin("a", 2), Begin::Waiting));
        assert!(matches!(d.begin("a", 3), Begin::Waiting));
        assert_eq!(d.finish("a", &ack("a")), vec![2, 3]);
        match d.begin("a", 4) {
            Begin::Answered(a) => assert_eq!(a, ack("a")),
            _ => panic!("an answered id is answered again"),
        }
        assert!(matches!(d.begin("b", 5), Begin::New));
    }

    #[test]
    fn old_answers_are_forgotten() {
        let mut d = Dedupe::new(Duration::ZERO);
        assert!(matches!(d.begin("a", ()), Begin::New));
        d.finish("a", &ack("a"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(d.begin("b", ()), Begin::New));
        d.finish("b", &ack("b"));
        assert!(matches!(d.begin("a", ()), Begin::New), "past the window");
    }
}

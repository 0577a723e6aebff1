//! Requests oriond has seen by id, so a command the broker redelivers (orion-control
//! restarted before acknowledging it) is answered again, never applied twice. Only the
//! `mqtt:` ids orion-control forwards are tracked. An answered id is kept for the window
//! (`mqtt.command_max_age_s`, the age a command may reach), on the wall clock so the record
//! outlives an oriond restart (saved with the desired state, `crate::persist`). At most
//! [`MAX`] are kept: when that many were answered within the window, a new command is
//! refused as busy rather than an answer forgotten early. The time comes in as an argument
//! (ms since the Unix epoch, [`now_ms`] in oriond), so the window is tested on virtual time.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use orion_protocol::Ack;
use serde::{Deserialize, Serialize};

/// Ids kept at most.
pub const MAX: usize = 4096;
/// Largest saved file read back (MAX records of a few hundred bytes).
const MAX_FILE: u64 = 4 << 20;

enum Seen<T> {
    /// Being handled; these repeats wait for the same answer.
    InFlight(Vec<T>),
    /// Answered with this ack at this time (ms since the Unix epoch).
    Done(Ack, u64),
}

/// One answered command, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub ack: Ack,
    pub answered_unix_ms: u64,
}

/// What to do with a request.
pub enum Begin {
    /// Not seen: handle it.
    New,
    /// A repeat of one being handled: it waits (the waiter is kept).
    Waiting,
    /// A repeat of one answered: send this again.
    Answered(Ack),
    /// [`MAX`] commands were answered within the window: refuse this one (busy).
    Full,
}

pub struct Dedupe<T> {
    seen: HashMap<String, Seen<T>>,
    window: Duration,
}

/// The wall clock, ms since the Unix epoch: what oriond passes in.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<T> Dedupe<T> {
    pub fn new(window: Duration) -> Self {
        Self {
            seen: HashMap::new(),
            window,
        }
    }

    /// The records of a previous run still within the window at `now`.
    pub fn restore(&mut self, records: Vec<Record>, now: u64) {
        for r in records {
            if !self.expired(r.answered_unix_ms, now) && self.seen.len() < MAX {
                self.seen
                    .insert(r.key, Seen::Done(r.ack, r.answered_unix_ms));
            }
        }
    }

    /// The answered ids, to save.
    pub fn records(&self) -> Vec<Record> {
        self.seen
            .iter()
            .filter_map(|(k, s)| match s {
                Seen::Done(ack, at) => Some(Record {
                    key: k.clone(),
                    ack: ack.clone(),
                    answered_unix_ms: *at,
                }),
                Seen::InFlight(_) => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    fn expired(&self, at: u64, now: u64) -> bool {
        now.saturating_sub(at) > self.window.as_millis() as u64
    }

    /// `key` arrives at `now`.
    pub fn begin(&mut self, key: &str, waiter: T, now: u64) -> Begin {
        match self.seen.get_mut(key) {
            Some(Seen::Done(ack, _)) => Begin::Answered(ack.clone()),
            Some(Seen::InFlight(waiting)) => {
                waiting.push(waiter);
                Begin::Waiting
            }
            None => {
                if self.seen.len() >= MAX {
                    self.forget_expired(now);
                }
                if self.seen.len() >= MAX {
                    return Begin::Full;
                }
                self.seen
                    .insert(key.to_string(), Seen::InFlight(Vec::new()));
                Begin::New
            }
        }
    }

    fn forget_expired(&mut self, now: u64) {
        let window = self.window.as_millis() as u64;
        self.seen
            .retain(|_, s| !matches!(s, Seen::Done(_, at) if now.saturating_sub(*at) > window));
    }

    /// `key` was answered with `ack` at `now`: returns the repeats that waited for it.
    pub fn finish(&mut self, key: &str, ack: &Ack, now: u64) -> Vec<T> {
        let waiting = match self.seen.remove(key) {
            Some(Seen::InFlight(w)) => w,
            _ => Vec::new(),
        };
        self.forget_expired(now);
        self.seen
            .insert(key.to_string(), Seen::Done(ack.clone(), now));
        waiting
    }
}

/// Saves `records` at `path` (atomically).
pub fn save(path: &Path, records: &[Record]) -> Result<()> {
    let body = serde_json::to_vec(records)?;
    crate::atomic_file::write_atomically(path, &body)
}

/// The records saved at `path`; none when there is no file. A file that cannot be used is
/// reported and left for the operator (renamed `*.bad`).
pub fn load(path: &Path) -> (Vec<Record>, Option<String>) {
    match crate::atomic_file::read_json(path, MAX_FILE) {
        Ok(records) => (records.unwrap_or_default(), None),
        Err(e) => {
            let aside = crate::atomic_file::set_aside(path);
            let why = format!(
                "ignoring the answered commands saved in {} ({e:#}); moved to {}: a command the broker redelivers now may be applied again",
                path.display(),
                aside.display()
            );
            (Vec::new(), Some(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moment of virtual time (ms since the Unix epoch).
    const T0: u64 = 1_800_000_000_000;

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
        assert!(matches!(d.begin("a", 1, T0), Begin::New));
        assert!(matches!(d.begin("a", 2, T0), Begin::Waiting));
        assert!(matches!(d.begin("a", 3, T0), Begin::Waiting));
        assert_eq!(d.finish("a", &ack("a"), T0), vec![2, 3]);
        match d.begin("a", 4, T0 + 59_000) {
            Begin::Answered(a) => assert_eq!(a, ack("a")),
            _ => panic!("an answered id is answered again"),
        }
        assert!(matches!(d.begin("b", 5, T0), Begin::New));
    }

    #[test]
    fn old_answers_are_forgotten() {
        // Virtual time: answered at T0, the window is 60 s.
        let mut d = Dedupe::new(Duration::from_secs(60));
        assert!(matches!(d.begin("a", (), T0), Begin::New));
        d.finish("a", &ack("a"), T0);
        assert!(matches!(d.begin("a", (), T0 + 60_000), Begin::Answered(_)));
        // Something answered past the window forgets it.
        assert!(matches!(d.begin("b", (), T0 + 60_001), Begin::New));
        d.finish("b", &ack("b"), T0 + 60_001);
        assert!(
            matches!(d.begin("a", (), T0 + 60_001), Begin::New),
            "past the window"
        );
    }

    #[test]
    fn a_full_window_refuses_rather_than_forgets() {
        let mut d = Dedupe::new(Duration::from_secs(600));
        for i in 0..MAX {
            let key = format!("k{i}");
            assert!(matches!(d.begin(&key, (), T0), Begin::New));
            d.finish(&key, &ack(&key), T0);
        }
        assert!(matches!(d.begin("one more", (), T0 + 1), Begin::Full));
        // Every answer is still there, the first one too.
        assert!(matches!(d.begin("k0", (), T0 + 1), Begin::Answered(_)));
        // Once the window passed, room again.
        assert!(matches!(d.begin("one more", (), T0 + 600_001), Begin::New));
    }

    #[test]
    fn answers_survive_a_restart_through_the_saved_file_within_the_window() {
        let dir = std::env::temp_dir().join(format!("orion-dedupe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("answered-x.json");
        let mut d = Dedupe::new(Duration::from_secs(600));
        assert!(matches!(d.begin("a", (), T0), Begin::New));
        d.finish("a", &ack("a"), T0);
        let mut old = d.records();
        old.push(Record {
            key: "old".into(),
            ack: ack("old"),
            answered_unix_ms: T0 - 601_000,
        });
        save(&path, &old).unwrap();
        let (records, why) = load(&path);
        assert!(why.is_none());
        let mut next = Dedupe::<()>::new(Duration::from_secs(600));
        next.restore(records, T0);
        assert!(matches!(next.begin("a", (), T0), Begin::Answered(a) if a == ack("a")));
        assert!(
            matches!(next.begin("old", (), T0), Begin::New),
            "past the window"
        );
        std::fs::write(&path, b"not json").unwrap();
        let (records, why) = load(&path);
        assert!(records.is_empty() && why.is_some_and(|w| w.contains("applied again")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

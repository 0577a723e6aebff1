//! Room occupancy from the detections: is someone in the room, how many, since when. A care
//! backend wants this rather than per-frame boxes. Debounced: `enter_frames` frames in a
//! row with a person (confidence ≥ `min_confidence`) make the room occupied; `leave_after_s`
//! without one make it empty; the count changes once it held for `enter_frames` frames.
//! While nothing is detected on purpose or by failure (paused, camera down, detector not
//! running) occupancy is unknown — `occupied: null` with the reason — never a stale answer.
//! Pure: times come in as the frames' capture times.

use std::time::Duration;

pub use orion_protocol::occupancy::Occupancy;

/// `[occupancy]` in the config, validated there.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub enter_frames: u32,
    pub leave_after: Duration,
    pub min_confidence: f64,
}

pub struct Tracker {
    s: Settings,
    now: Occupancy,
    /// Frames in a row with a person, and when that run began.
    present: u32,
    present_from: u64,
    /// A count seen in this many frames in a row (the count changes once it held).
    candidate: (u32, u32),
    /// Capture time of the first frame of the current run without a person.
    empty_from: Option<u64>,
}

fn rfc3339(unix_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_millis(t).to_string()
}

impl Tracker {
    pub fn new(s: Settings) -> Self {
        Self {
            s,
            now: Occupancy {
                occupied: None,
                count: 0,
                since: None,
                last_seen: None,
                frame_seq: None,
                reason: Some("starting: no frame processed yet".into()),
            },
            present: 0,
            present_from: 0,
            candidate: (0, 0),
            empty_from: None,
        }
    }

    pub fn current(&self) -> &Occupancy {
        &self.now
    }

    /// One processed frame with `confidences` of its persons; true if the answer changed
    /// (occupied, count or reason: `last_seen` alone is not news).
    pub fn frame(&mut self, seq: u64, captured_ns: u64, confidences: &[f64]) -> bool {
        let before = self.answer();
        let count = confidences
            .iter()
            .filter(|c| **c >= self.s.min_confidence)
            .count() as u32;
        if self.now.reason.is_some() {
            // Detection runs again: undecided until the debounce decides.
            self.now.reason = None;
        }
        self.candidate = if self.candidate.0 == count {
            (count, self.candidate.1.saturating_add(1))
        } else {
            (count, 1)
        };
        if count > 0 {
            if self.present == 0 {
                self.present_from = captured_ns;
            }
            self.present = self.present.saturating_add(1);
            self.empty_from = None;
            self.now.last_seen = Some(rfc3339(captured_ns));
            if self.present >= self.s.enter_frames {
                if self.now.occupied != Some(true) {
                    self.now.occupied = Some(true);
                    self.now.since = Some(rfc3339(self.present_from));
                    self.now.count = count;
                    self.now.frame_seq = Some(seq);
                } else if self.candidate.1 >= self.s.enter_frames && self.now.count != count {
                    self.now.count = count;
                    self.now.frame_seq = Some(seq);
                }
            }
        } else {
            self.present = 0;
            let from = *self.empty_from.get_or_insert(captured_ns);
            let empty_for = Duration::from_nanos(captured_ns.saturating_sub(from));
            if self.now.occupied != Some(false) && empty_for >= self.s.leave_after {
                self.now.occupied = Some(false);
                self.now.since = Some(rfc3339(from));
                self.now.count = 0;
                self.now.frame_seq = Some(seq);
            }
        }
        self.answer() != before
    }

    fn answer(&self) -> (Option<bool>, u32, Option<String>) {
        (self.now.occupied, self.now.count, self.now.reason.clone())
    }

    /// Nothing is being detected, for `reason`; true if the answer changed.
    pub fn unknown(&mut self, reason: &str) -> bool {
        if self.now.occupied.is_none() && self.now.reason.as_deref() == Some(reason) {
            return false;
        }
        self.now.occupied = None;
        self.now.count = 0;
        self.now.since = None;
        self.now.frame_seq = None;
        self.now.reason = Some(reason.to_string());
        self.present = 0;
        self.candidate = (0, 0);
        self.empty_from = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn tracker() -> Tracker {
        Tracker::new(Settings {
            enter_frames: 3,
            leave_after: Duration::from_secs(2),
            min_confidence: 0.5,
        })
    }

    /// Feeds frames 200 ms apart from `t0` ms; returns the changes' indices.
    fn feed(t: &mut Tracker, seq0: u64, t0: u64, frames: &[&[f64]]) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if t.frame(seq0 + i as u64, (t0 + 200 * i as u64) * MS, f) {
                changed.push(i);
            }
        }
        changed
    }

    #[test]
    fn a_person_must_stay_enter_frames_and_be_gone_leave_after() {
        let mut t = tracker();
        assert_eq!(t.current().occupied, None);
        // A flicker (one frame, and a weak one) does not make the room occupied; the first
        // frame ends "starting" (undecided, no reason).
        let changes = feed(&mut t, 1, 0, &[&[0.9], &[], &[0.3], &[0.4, 0.2]]);
        assert_eq!(changes, vec![0]);
        assert_eq!(t.current().reason, None);
        assert_ne!(t.current().occupied, Some(true));
        // Three frames in a row do; `since` is the first of them.
        let changes = feed(&mut t, 10, 1000, &[&[0.9], &[0.8], &[0.7], &[0.9]]);
        assert_eq!(changes, vec![2], "occupied at the third");
        let o = t.current().clone();
        assert_eq!(
            (o.occupied, o.count, o.frame_seq),
            (Some(true), 1, Some(12))
        );
        assert_eq!(o.since.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        // Empty for less than 2 s: still occupied; from 2 s on: empty, since the first
        // empty frame.
        let empty: Vec<&[f64]> = vec![&[]; 11];
        let changes = feed(&mut t, 20, 2000, &empty);
        assert_eq!(changes, vec![10]);
        let o = t.current();
        assert_eq!((o.occupied, o.count), (Some(false), 0));
        assert_eq!(o.since.as_deref(), Some("1970-01-01T00:00:02.000Z"));
        assert_eq!(o.last_seen.as_deref(), Some("1970-01-01T00:00:01.600Z"));
    }

    #[test]
    fn the_count_changes_once_it_held_and_unknown_is_never_stale() {
        let mut t = tracker();
        feed(&mut t, 1, 0, &[&[0.9], &[0.9], &[0.9]]);
        assert_eq!(t.current().count, 1);
        // A second person for two frames: not yet; for three: 2.
        assert!(feed(&mut t, 4, 600, &[&[0.9, 0.8], &[0.9, 0.8]]).is_empty());
        assert_eq!(t.current().count, 1);
        assert_eq!(feed(&mut t, 6, 1000, &[&[0.9, 0.8]]), vec![0]);
        assert_eq!(t.current().count, 2);
        // Paused: unknown with the reason, once.
        assert!(t.unknown("paused"));
        assert!(!t.unknown("paused"));
        let o = t.current();
        assert_eq!(
            (o.occupied, o.count, o.reason.as_deref()),
            (None, 0, Some("paused"))
        );
        assert!(t.unknown("camera down"));
        // Back: undecided until the debounce decides again.
        feed(&mut t, 20, 5000, &[&[0.9]]);
        assert_eq!(
            (t.current().occupied, t.current().reason.clone()),
            (None, None)
        );
        feed(&mut t, 21, 5200, &[&[0.9], &[0.9]]);
        assert_eq!(t.current().occupied, Some(true));
    }
}

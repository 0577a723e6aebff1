//! Room occupancy from the detections: is someone in the room, how many, since when. A care
//! backend wants this rather than per-frame boxes. Debounced: `enter_frames` frames with a
//! person (confidence ≥ `min_confidence`) make the room occupied; `leave_after_s` without
//! one make it empty; the count changes once it held for `enter_frames` frames.
//!
//! A crop is never taken for the room: a frame that showed only a region (attention ROIs,
//! auto-focus) and found nobody says nothing about the rest, so it neither ends a run of
//! presence nor starts the empty timer, and a count falls only on a whole frame. The room
//! turns empty only when whole frames found nobody for `leave_after_s` (the detector looks
//! at the whole frame at least every `[occupancy] full_look_s`).
//!
//! While nothing is detected on purpose or by failure (paused, camera down, detector not
//! running) occupancy is unknown — `occupied: null` with the reason — never a stale answer.
//! Pure: times come in as the frames' capture times.

use std::time::Duration;

pub use orion_protocol::occupancy::{Coverage, Occupancy};

/// `[occupancy]` in the config, validated there.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub enter_frames: u32,
    pub leave_after: Duration,
    pub min_confidence: f64,
}

/// One judged frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub seq: u64,
    /// Capture time, ns since the Unix epoch.
    pub captured_ns: u64,
    pub coverage: Coverage,
    /// The confidences of the persons found.
    pub confidences: &'a [f64],
}

pub struct Tracker {
    s: Settings,
    now: Occupancy,
    /// Frames with a person since the last whole frame without one, and when the first
    /// of them was captured.
    present: u32,
    present_from: u64,
    /// A count seen in this many frames in a row (the count changes once it held).
    candidate: (u32, u32),
    /// Capture time of the first whole frame of the current run without a person.
    empty_from: Option<u64>,
    /// `since`, in ns since the Unix epoch.
    since_ns: Option<u64>,
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
                coverage: None,
                last_full_look: None,
            },
            present: 0,
            present_from: 0,
            candidate: (0, 0),
            empty_from: None,
            since_ns: None,
        }
    }

    /// When the current answer began, ns since the Unix epoch.
    pub fn since_ns(&self) -> Option<u64> {
        self.since_ns
    }

    pub fn current(&self) -> &Occupancy {
        &self.now
    }

    /// One judged frame; true if the answer changed (occupied, count or reason:
    /// `last_seen` and `last_full_look` alone are not news).
    pub fn frame(&mut self, f: Frame) -> bool {
        let before = self.answer();
        let count = f
            .confidences
            .iter()
            .filter(|c| **c >= self.s.min_confidence)
            .count() as u32;
        let whole = f.coverage == Coverage::Full;
        if whole {
            self.now.last_full_look = Some(rfc3339(f.captured_ns));
        }
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
            self.someone(f, count);
        } else if whole {
            self.nobody(f);
        }
        // A region without a person says nothing about the rest of the room.
        self.answer() != before
    }

    fn someone(&mut self, f: Frame, count: u32) {
        if self.present == 0 {
            self.present_from = f.captured_ns;
        }
        self.present = self.present.saturating_add(1);
        self.empty_from = None;
        self.now.last_seen = Some(rfc3339(f.captured_ns));
        if self.present < self.s.enter_frames {
            return;
        }
        if self.now.occupied != Some(true) {
            self.now.occupied = Some(true);
            self.now.since = Some(rfc3339(self.present_from));
            self.since_ns = Some(self.present_from);
            self.set_count(count, f);
        } else if self.candidate.1 >= self.s.enter_frames
            && self.now.count != count
            // Fewer in a region may be people outside it.
            && (f.coverage == Coverage::Full || count > self.now.count)
        {
            self.set_count(count, f);
        }
    }

    fn nobody(&mut self, f: Frame) {
        self.present = 0;
        let from = *self.empty_from.get_or_insert(f.captured_ns);
        let empty_for = Duration::from_nanos(f.captured_ns.saturating_sub(from));
        if self.now.occupied != Some(false) && empty_for >= self.s.leave_after {
            self.now.occupied = Some(false);
            self.now.since = Some(rfc3339(from));
            self.since_ns = Some(from);
            self.set_count(0, f);
        }
    }

    fn set_count(&mut self, count: u32, f: Frame) {
        self.now.count = count;
        self.now.frame_seq = Some(f.seq);
        self.now.coverage = Some(f.coverage);
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
        self.since_ns = None;
        self.now.frame_seq = None;
        self.now.coverage = None;
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

    /// Feeds whole frames 200 ms apart from `t0` ms; returns the changes' indices.
    fn feed(t: &mut Tracker, seq0: u64, t0: u64, frames: &[&[f64]]) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let frame = Frame {
                seq: seq0 + i as u64,
                captured_ns: (t0 + 200 * i as u64) * MS,
                coverage: Coverage::Full,
                confidences: f,
            };
            if t.frame(frame) {
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

    /// Frames 200 ms apart from `t0` ms, each with its coverage.
    fn look(t: &mut Tracker, seq0: u64, t0: u64, frames: &[(Coverage, &[f64])]) {
        for (i, (coverage, confidences)) in frames.iter().enumerate() {
            t.frame(Frame {
                seq: seq0 + i as u64,
                captured_ns: (t0 + 200 * i as u64) * MS,
                coverage: *coverage,
                confidences,
            });
        }
    }

    #[test]
    fn a_region_that_sees_nobody_never_makes_the_room_empty() {
        use Coverage::{Full, Region};
        const NOBODY: &[f64] = &[];
        const ONE: &[f64] = &[0.9];
        const TWO: &[f64] = &[0.9, 0.8];
        let mut t = tracker();
        // Two people seen whole; then a corner crop sees nobody for a minute.
        look(&mut t, 1, 0, &[(Full, TWO); 3]);
        assert_eq!((t.current().occupied, t.current().count), (Some(true), 2));
        assert_eq!(t.current().coverage, Some(Full));
        let corner: Vec<(Coverage, &[f64])> = vec![(Region, NOBODY); 300];
        look(&mut t, 10, 1000, &corner);
        let o = t.current();
        assert_eq!(
            (o.occupied, o.count),
            (Some(true), 2),
            "never empty from a crop"
        );
        assert_eq!(
            o.last_full_look.as_deref(),
            Some("1970-01-01T00:00:00.400Z")
        );
        // A region that finds one of the two does not lower the count; a whole frame does.
        look(&mut t, 400, 70_000, &[(Region, ONE); 5]);
        assert_eq!(t.current().count, 2);
        look(&mut t, 410, 72_000, &[(Full, ONE)]);
        assert_eq!((t.current().count, t.current().coverage), (1, Some(Full)));
        // Region frames with a person between whole frames still build presence.
        let mut u = tracker();
        look(
            &mut u,
            1,
            0,
            &[(Full, ONE), (Region, NOBODY), (Region, ONE), (Region, ONE)],
        );
        assert_eq!(u.current().occupied, Some(true));
        assert_eq!(u.current().coverage, Some(Region));
        // Empty only after whole frames found nobody for `leave_after`.
        let mut w = tracker();
        look(&mut w, 1, 0, &[(Full, ONE); 3]);
        look(
            &mut w,
            10,
            1000,
            &[(Full, NOBODY), (Region, NOBODY), (Region, NOBODY)],
        );
        look(&mut w, 20, 2800, &[(Region, NOBODY); 5]);
        assert_eq!(
            w.current().occupied,
            Some(true),
            "2 s passed, but only in crops"
        );
        look(&mut w, 30, 3000, &[(Full, NOBODY)]);
        let o = w.current();
        assert_eq!((o.occupied, o.coverage), (Some(false), Some(Full)));
        assert_eq!(o.since.as_deref(), Some("1970-01-01T00:00:01.000Z"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn step() -> impl Strategy<Value = Option<(bool, Vec<f64>, u64)>> {
            prop_oneof![
                1 => Just(None),
                30 => (any::<bool>(), prop::collection::vec(0.0f64..1.0, 0..4), 1u64..3000)
                    .prop_map(Some),
            ]
        }

        proptest! {
            /// Whatever the frames, coverage and gaps: the room turns empty only on a whole
            /// frame that found nobody, after whole frames found nobody for `leave_after`
            /// with no person seen since; `since` is never after the frame that decided it.
            #[test]
            fn empty_only_after_whole_frames_found_nobody(
                steps in prop::collection::vec(step(), 1..200),
            ) {
                let mut t = tracker();
                let (mut at, mut last_person, mut first_empty_whole) = (0u64, None, None);
                for (seq, step) in steps.into_iter().enumerate() {
                    let Some((whole, confidences, gap_ms)) = step else {
                        t.unknown("paused");
                        first_empty_whole = None;
                        continue;
                    };
                    at += gap_ms * MS;
                    let coverage = if whole { Coverage::Full } else { Coverage::Region };
                    let persons = confidences.iter().filter(|c| **c >= 0.5).count();
                    if persons > 0 {
                        last_person = Some(at);
                        first_empty_whole = None;
                    } else if whole && first_empty_whole.is_none() {
                        first_empty_whole = Some(at);
                    }
                    let before = t.current().occupied;
                    t.frame(Frame { seq: seq as u64, captured_ns: at, coverage, confidences: &confidences });
                    let o = t.current();
                    if o.occupied == Some(false) && before != Some(false) {
                        prop_assert!(whole && persons == 0, "empty decided on a crop or with a person");
                        let from = first_empty_whole.unwrap_or(u64::MAX);
                        prop_assert!(at - from >= 2000 * MS, "empty before leave_after");
                        prop_assert!(last_person.is_none_or(|p| p < from));
                        prop_assert_eq!(o.coverage, Some(Coverage::Full));
                    }
                    if o.occupied == Some(false) {
                        prop_assert_eq!(o.count, 0);
                    }
                }
            }
        }
    }
}

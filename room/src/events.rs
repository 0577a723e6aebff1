//! Care events: what a carer reads as happenings, with an id, a start and an end.
//!
//! - `room`: the room's occupancy turned `true` → start; a larger count → update; `false`
//!   → end. While occupancy is unknown (paused, camera down) an open event stays open: it
//!   is carried on, and ends only when a whole look finds the room empty.
//! - `zone`: the same per zone; a zone removed ends its event (`reason`).
//! - a class (`Fall`): starts after `min_frames` frames in a row with a box of the class at
//!   `min_confidence` or more, ends after `end_after` without one.
//!
//! Ids are `{boot}-{n}`: oriond's start time (ms since the Unix epoch, hex) and a counter, so
//! they never repeat across restarts. The open events are handed to the host to persist
//! and given back after a restart (`restore`): carried on, never started twice. Pure: times
//! come in as capture times.

use std::collections::HashMap;
use std::time::Duration;

use orion_protocol::event::{CareEvent, EventState};

/// A class that makes events, from `[[events.classes]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRule {
    pub class: String,
    pub min_confidence: f64,
    pub min_frames: u32,
    pub end_after: Duration,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Room,
    Zone(String),
    Class(String),
}

impl Subject {
    fn of(e: &CareEvent) -> Subject {
        match (e.kind.as_str(), &e.zone) {
            ("room", _) => Subject::Room,
            ("zone", Some(z)) => Subject::Zone(z.clone()),
            (class, _) => Subject::Class(class.to_string()),
        }
    }
}

/// A class's run of frames.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    frames: u32,
    first_ns: u64,
    last_seen_ns: u64,
}

pub struct Events {
    instance_id: String,
    boot_ms: u64,
    next: u64,
    open: HashMap<Subject, CareEvent>,
    rules: Vec<ClassRule>,
    runs: HashMap<String, Run>,
}

fn rfc3339(unix_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_millis(t).to_string()
}

impl Events {
    /// `boot_ms`: when this oriond started (ms since the Unix epoch): part of every id.
    pub fn new(instance_id: &str, boot_ms: u64, rules: Vec<ClassRule>) -> Self {
        Self {
            instance_id: instance_id.to_string(),
            boot_ms,
            next: 0,
            open: HashMap::new(),
            rules,
            runs: HashMap::new(),
        }
    }

    /// Events left open by the oriond before this one: carried on (no new start).
    pub fn restore(&mut self, open: Vec<CareEvent>) {
        for e in open {
            if e.state != EventState::End {
                self.open.insert(Subject::of(&e), e);
            }
        }
    }

    /// The open events, to persist.
    pub fn open(&self) -> Vec<CareEvent> {
        let mut open: Vec<CareEvent> = self.open.values().cloned().collect();
        open.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        open
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("{:x}-{}", self.boot_ms, self.next)
    }

    fn start(&mut self, subject: Subject, count: u32, seq: u64, at: String) -> CareEvent {
        let (kind, zone) = match &subject {
            Subject::Room => ("room".to_string(), None),
            Subject::Zone(z) => ("zone".to_string(), Some(z.clone())),
            Subject::Class(c) => (c.clone(), None),
        };
        let e = CareEvent {
            event_id: self.id(),
            instance_id: self.instance_id.clone(),
            kind,
            zone,
            state: EventState::Start,
            start: at,
            end: None,
            max_count: count,
            best_frame_seq: seq,
            reason: None,
        };
        self.open.insert(subject, e.clone());
        e
    }

    fn end(&mut self, subject: &Subject, at: String, reason: Option<&str>) -> Option<CareEvent> {
        let mut e = self.open.remove(subject)?;
        e.state = EventState::End;
        // Never before its start (a clock stepped back).
        e.end = Some(at.max(e.start.clone()));
        e.reason = reason.map(str::to_string);
        Some(e)
    }

    /// The answer of the room or a zone after a frame: `occupied` (`None`: unknown),
    /// `count`, the frame, and `since` (RFC 3339): when the answer began.
    pub fn occupancy(
        &mut self,
        subject: Subject,
        occupied: Option<bool>,
        count: u32,
        seq: u64,
        since: &str,
    ) -> Option<CareEvent> {
        match (occupied, self.open.get_mut(&subject)) {
            (Some(true), None) => Some(self.start(subject, count, seq, since.to_string())),
            (Some(true), Some(e)) if count > e.max_count => {
                e.max_count = count;
                e.best_frame_seq = seq;
                let mut update = e.clone();
                update.state = EventState::Update;
                Some(update)
            }
            (Some(false), Some(_)) => self.end(&subject, since.to_string(), None),
            _ => None,
        }
    }

    /// A zone is gone: its open event ends.
    pub fn zone_removed(&mut self, zone: &str, at: &str) -> Option<CareEvent> {
        self.end(
            &Subject::Zone(zone.to_string()),
            at.to_string(),
            Some("zone removed"),
        )
    }

    /// One judged frame's boxes (class, confidence): class events.
    pub fn classes(&mut self, seq: u64, at_ns: u64, boxes: &[(&str, f64)]) -> Vec<CareEvent> {
        let mut out = Vec::new();
        for rule in self.rules.clone() {
            let count = boxes
                .iter()
                .filter(|(c, conf)| *c == rule.class && *conf >= rule.min_confidence)
                .count() as u32;
            let subject = Subject::Class(rule.class.clone());
            let run = self.runs.entry(rule.class.clone()).or_default();
            if count > 0 {
                if run.frames == 0 {
                    run.first_ns = at_ns;
                }
                run.frames = run.frames.saturating_add(1);
                run.last_seen_ns = at_ns;
                let (frames, first) = (run.frames, run.first_ns);
                if frames >= rule.min_frames {
                    out.extend(self.occupancy(subject, Some(true), count, seq, &rfc3339(first)));
                }
            } else {
                run.frames = 0;
                if run.last_seen_ns == 0 {
                    // Open from before a restart, not seen since: the clock starts now.
                    run.last_seen_ns = at_ns;
                }
                let gone_for = Duration::from_nanos(at_ns.saturating_sub(run.last_seen_ns));
                let last = run.last_seen_ns;
                if gone_for >= rule.end_after {
                    out.extend(self.occupancy(subject, Some(false), 0, seq, &rfc3339(last)));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    fn fall() -> ClassRule {
        ClassRule {
            class: "Fall".into(),
            min_confidence: 0.6,
            min_frames: 3,
            end_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_room_starts_grows_and_ends_one_event() {
        let mut ev = Events::new("room-1", 0x100, vec![]);
        let start = ev
            .occupancy(Subject::Room, Some(true), 1, 10, &rfc3339(S))
            .unwrap();
        assert_eq!(
            (start.state, start.kind.as_str()),
            (EventState::Start, "room")
        );
        assert_eq!(start.event_id, "100-1");
        assert!(
            ev.occupancy(Subject::Room, Some(true), 1, 11, &rfc3339(S))
                .is_none()
        );
        let up = ev
            .occupancy(Subject::Room, Some(true), 3, 12, &rfc3339(S))
            .unwrap();
        assert_eq!(
            (up.state, up.max_count, up.best_frame_seq),
            (EventState::Update, 3, 12)
        );
        // Unknown: carried on.
        assert!(
            ev.occupancy(Subject::Room, None, 0, 13, &rfc3339(2 * S))
                .is_none()
        );
        let end = ev
            .occupancy(Subject::Room, Some(false), 0, 14, &rfc3339(9 * S))
            .unwrap();
        assert_eq!(end.event_id, start.event_id);
        assert_eq!(end.end.as_deref(), Some("1970-01-01T00:00:09.000Z"));
        assert!(ev.open().is_empty());
    }

    #[test]
    fn a_class_event_needs_min_frames_and_ends_after_end_after() {
        let mut ev = Events::new("room-1", 1, vec![fall()]);
        let fallen = [("Fall", 0.8)];
        assert!(ev.classes(1, S, &fallen).is_empty());
        assert!(
            ev.classes(2, 2 * S, &[("Fall", 0.5)]).is_empty(),
            "too weak: run broken"
        );
        assert!(ev.classes(3, 3 * S, &fallen).is_empty());
        assert!(ev.classes(4, 4 * S, &fallen).is_empty());
        let start = ev.classes(5, 5 * S, &fallen);
        assert_eq!(start.len(), 1);
        assert_eq!(
            (start[0].kind.as_str(), start[0].state),
            ("Fall", EventState::Start)
        );
        assert_eq!(start[0].start, "1970-01-01T00:00:03.000Z");
        assert!(
            ev.classes(6, 9 * S, &[]).is_empty(),
            "4 s without: still open"
        );
        let end = ev.classes(7, 10 * S, &[("Normal", 0.9)]);
        assert_eq!(end[0].state, EventState::End);
        assert_eq!(end[0].end.as_deref(), Some("1970-01-01T00:00:05.000Z"));
    }

    #[test]
    fn a_restart_carries_open_events_on_and_a_removed_zone_ends_its_own() {
        let mut before = Events::new("room-1", 1, vec![]);
        before.occupancy(Subject::Zone("bed".into()), Some(true), 1, 1, &rfc3339(S));
        let open = before.open();
        let mut after = Events::new("room-1", 2, vec![]);
        after.restore(open.clone());
        assert!(
            after
                .occupancy(
                    Subject::Zone("bed".into()),
                    Some(true),
                    1,
                    2,
                    &rfc3339(2 * S)
                )
                .is_none(),
            "no second start"
        );
        let end = after.zone_removed("bed", &rfc3339(3 * S)).unwrap();
        assert_eq!(end.event_id, open[0].event_id);
        assert_eq!(end.reason.as_deref(), Some("zone removed"));
    }

    fn step() -> impl Strategy<Value = (u8, Option<bool>, u32, bool)> {
        (
            0u8..3,
            prop::option::of(any::<bool>()),
            0u32..5,
            any::<bool>(),
        )
    }

    proptest! {
        /// Over any answers, fall boxes and restarts: every end follows its start (same
        /// id, end ≥ start), ids never repeat, and no subject has two starts without an
        /// end between them.
        #[test]
        fn events_are_well_formed_across_restarts(steps in prop::collection::vec(step(), 1..150)) {
            let mut boot = 1u64;
            let mut ev = Events::new("r", boot, vec![fall()]);
            let mut open: HashMap<String, String> = HashMap::new(); // id -> start
            let mut seen_ids = std::collections::HashSet::new();
            for (i, (who, occupied, count, restart)) in steps.into_iter().enumerate() {
                let at = (i as u64 + 1) * S;
                if restart {
                    boot += 1;
                    let carried = ev.open();
                    ev = Events::new("r", boot, vec![fall()]);
                    ev.restore(carried);
                }
                let out: Vec<CareEvent> = match who {
                    0 => ev.occupancy(Subject::Room, occupied, count, i as u64, &rfc3339(at)).into_iter().collect(),
                    1 => ev.occupancy(Subject::Zone("bed".into()), occupied, count, i as u64, &rfc3339(at)).into_iter().collect(),
                    _ => ev.classes(i as u64, at, if occupied == Some(true) { &[("Fall", 0.9)] } else { &[] }),
                };
                for e in out {
                    match e.state {
                        EventState::Start => {
                            prop_assert!(seen_ids.insert(e.event_id.clone()), "id reused");
                            prop_assert!(
                                !open.values().any(|k| *k == format!("{}{:?}", e.kind, e.zone)),
                                "a second start for the same subject"
                            );
                            open.insert(e.event_id.clone(), format!("{}{:?}", e.kind, e.zone));
                        }
                        EventState::Update => prop_assert!(open.contains_key(&e.event_id)),
                        EventState::End => {
                            prop_assert!(open.remove(&e.event_id).is_some(), "end without start");
                            prop_assert!(e.end.as_deref() >= Some(e.start.as_str()));
                        }
                    }
                }
            }
        }
    }
}

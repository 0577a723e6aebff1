//! Occupancy per zone: each zone is a small room. A person is in a zone when the bottom
//! centre of their box is inside its polygon; each zone is debounced like the room (the
//! same `[occupancy]` settings, the same rule that only a whole frame may make it empty).
//! Pure: persons and times in, the zones whose answer changed out.

use std::time::Duration;

use orion_protocol::occupancy::ZoneOccupancy;
use orion_protocol::zone::{ZoneName, Zones};

use crate::occupancy::{Coverage, Frame, Settings, Tracker};

/// A person found in a frame: the bottom centre of the box (normalized to the frame) and
/// the confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Person {
    pub x: f64,
    pub y: f64,
    pub confidence: f64,
}

struct Place {
    zone: orion_protocol::Zone,
    tracker: Tracker,
    last_dwell: Option<Duration>,
}

impl Place {
    fn answer(&self) -> ZoneOccupancy {
        ZoneOccupancy {
            zone: self.zone.name().clone(),
            occupancy: self.tracker.current().clone(),
            last_dwell_s: self.last_dwell.map(|d| d.as_secs_f64()),
        }
    }
}

/// One change to publish: a zone's new answer, or `None` when it was removed.
pub type Change = (ZoneName, Option<ZoneOccupancy>);

pub struct ZoneTrackers {
    settings: Settings,
    places: Vec<Place>,
}

impl ZoneTrackers {
    pub fn new(settings: Settings, zones: &Zones) -> Self {
        let mut t = Self {
            settings,
            places: Vec::new(),
        };
        t.set(zones);
        t
    }

    /// Replaces the zones. A zone kept with the same polygon keeps its state; a new or
    /// reshaped one starts undecided; a removed one is reported as `None`.
    pub fn set(&mut self, zones: &Zones) -> Vec<Change> {
        let mut old = std::mem::take(&mut self.places);
        let mut changes = Vec::new();
        for zone in zones.iter() {
            let kept = old.iter().position(|p| p.zone == *zone);
            let place = match kept {
                Some(i) => old.swap_remove(i),
                None => Place {
                    zone: zone.clone(),
                    tracker: Tracker::new(self.settings),
                    last_dwell: None,
                },
            };
            if kept.is_none() {
                changes.push((zone.name().clone(), Some(place.answer())));
            }
            self.places.push(place);
        }
        for gone in old {
            let name = gone.zone.name().clone();
            if !zones.iter().any(|z| *z.name() == name) {
                changes.push((name, None));
            }
        }
        changes
    }

    /// One judged frame; the zones whose answer changed.
    pub fn frame(
        &mut self,
        seq: u64,
        captured_ns: u64,
        coverage: Coverage,
        persons: &[Person],
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for place in &mut self.places {
            let inside: Vec<f64> = persons
                .iter()
                .filter(|p| place.zone.contains(p.x, p.y))
                .map(|p| p.confidence)
                .collect();
            let (was, was_since) = (place.tracker.current().occupied, place.tracker.since_ns());
            let changed = place.tracker.frame(Frame {
                seq,
                captured_ns,
                coverage,
                confidences: &inside,
            });
            if was == Some(true)
                && place.tracker.current().occupied == Some(false)
                && let (Some(from), Some(to)) = (was_since, place.tracker.since_ns())
            {
                place.last_dwell = Some(Duration::from_nanos(to.saturating_sub(from)));
            }
            if changed {
                changes.push((place.zone.name().clone(), Some(place.answer())));
            }
        }
        changes
    }

    /// Nothing is being detected, for `reason`: every zone is unknown.
    pub fn unknown(&mut self, reason: &str) -> Vec<Change> {
        self.places
            .iter_mut()
            .filter_map(|p| {
                p.tracker
                    .unknown(reason)
                    .then(|| (p.zone.name().clone(), Some(p.answer())))
            })
            .collect()
    }

    /// Every zone's current answer.
    pub fn current(&self) -> Vec<ZoneOccupancy> {
        self.places.iter().map(Place::answer).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_protocol::Zone;

    const MS: u64 = 1_000_000;

    fn zones(json: &str) -> Zones {
        serde_json::from_str(json).unwrap()
    }

    fn trackers(z: &Zones) -> ZoneTrackers {
        ZoneTrackers::new(
            Settings {
                enter_frames: 2,
                leave_after: Duration::from_secs(1),
                min_confidence: 0.5,
            },
            z,
        )
    }

    const BED: &str = r#"[{"name":"bed","polygon":[[0.1,0.5],[0.5,0.5],[0.5,0.9],[0.1,0.9]]},
                          {"name":"door","polygon":[[0.8,0],[1,0],[1,1],[0.8,1]]}]"#;

    fn at_bed() -> Person {
        Person {
            x: 0.3,
            y: 0.8,
            confidence: 0.9,
        }
    }

    #[test]
    fn a_person_counts_in_the_zone_under_their_feet_and_dwell_is_the_visit() {
        let mut t = trackers(&zones(BED));
        let full = Coverage::Full;
        assert!(
            t.frame(1, 0, full, &[at_bed()]).len() == 2,
            "both decided: undecided → …"
        );
        let changes = t.frame(2, 200 * MS, full, &[at_bed()]);
        let bed = changes
            .iter()
            .find(|(n, _)| n.as_str() == "bed")
            .and_then(|(_, o)| o.clone())
            .unwrap();
        assert_eq!(
            (bed.occupancy.occupied, bed.occupancy.count),
            (Some(true), 1)
        );
        assert!(changes.iter().all(|(n, _)| n.as_str() != "door"));
        let door = t
            .current()
            .into_iter()
            .find(|o| o.zone.as_str() == "door")
            .unwrap();
        assert_ne!(door.occupancy.occupied, Some(true));
        // Gone for 1 s of whole frames: empty, and the visit lasted from 0 to 400 ms (the
        // first empty frame).
        t.frame(3, 400 * MS, full, &[]);
        let changes = t.frame(4, 1400 * MS, full, &[]);
        let bed = changes
            .iter()
            .find(|(n, _)| n.as_str() == "bed")
            .and_then(|(_, o)| o.clone())
            .unwrap();
        assert_eq!(bed.occupancy.occupied, Some(false));
        assert_eq!(bed.last_dwell_s, Some(0.4));
    }

    #[test]
    fn setting_zones_keeps_unchanged_ones_and_clears_removed_ones() {
        let mut t = trackers(&zones(BED));
        t.frame(1, 0, Coverage::Full, &[at_bed()]);
        t.frame(2, 200 * MS, Coverage::Full, &[at_bed()]);
        let bed_only =
            zones(r#"[{"name":"bed","polygon":[[0.1,0.5],[0.5,0.5],[0.5,0.9],[0.1,0.9]]}]"#);
        let changes = t.set(&bed_only);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0.as_str(), "door");
        assert!(changes[0].1.is_none(), "door removed");
        assert_eq!(t.current()[0].occupancy.occupied, Some(true), "bed kept");
        // Reshaped: starts over.
        let moved = Zones::new(vec![
            Zone::new(
                ZoneName::new("bed").unwrap(),
                vec![[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]],
            )
            .unwrap(),
        ])
        .unwrap();
        let changes = t.set(&moved);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1.as_ref().unwrap().occupancy.occupied, None);
        assert_eq!(t.unknown("paused").len(), 1);
    }

    #[test]
    fn a_crop_never_empties_a_zone() {
        let mut t = trackers(&zones(BED));
        t.frame(1, 0, Coverage::Full, &[at_bed()]);
        t.frame(2, 200 * MS, Coverage::Full, &[at_bed()]);
        for i in 0..50 {
            t.frame(3 + i, (400 + 200 * i) * MS, Coverage::Region, &[]);
        }
        let bed = t
            .current()
            .into_iter()
            .find(|o| o.zone.as_str() == "bed")
            .unwrap();
        assert_eq!(bed.occupancy.occupied, Some(true));
    }
}

//! The host of the room logic (the `orion-room` crate, pure): feeds it every detection the
//! detector sends and the state of the system — paused, detector not running, camera not
//! streaming make occupancy unknown, with the reason — and hands each change to
//! orion-control, which publishes it retained; the status shows the current one.

use orion_protocol::command::AckError;
use orion_protocol::message::Message;
use orion_protocol::{Action, DetectionMessage, NormRect, ProcessName, Zones};
use serde_json::{Value, json};

use super::Supervisor;
use crate::child::Report;
use orion_protocol::event::{CareEvent, EventState};
use orion_room::events::{ClassRule, Events, Subject};
use orion_room::occupancy::{Coverage, Frame, Occupancy, Settings, Tracker};
use orion_room::sight::{self, Observers};
use orion_room::zones::{Person, ZoneTrackers};

/// The trackers' settings from `[occupancy]`.
fn settings(config: &orion_config::Config) -> Settings {
    let o = &config.occupancy;
    Settings {
        enter_frames: o.enter_frames,
        leave_after: std::time::Duration::from_secs_f64(o.leave_after_s),
        min_confidence: o.min_confidence,
    }
}

pub(super) fn tracker(config: &orion_config::Config) -> Tracker {
    Tracker::new(settings(config))
}

/// Care events with the `[events]` classes, carrying on the events the last oriond left
/// open (`events-{id}.json` in the state dir).
pub(super) fn care_events(config: &orion_config::Config) -> Events {
    let rules = config
        .events
        .classes
        .iter()
        .map(|c| ClassRule {
            class: c.class.clone(),
            min_confidence: c.min_confidence,
            min_frames: c.min_frames,
            end_after: std::time::Duration::from_secs_f64(c.end_after_s),
        })
        .collect();
    let boot_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut events = Events::new(config.instance_id.as_str(), boot_ms, rules);
    let path = config.instance_id.events_path(&config.supervisor.state_dir);
    let (open, warning) = crate::open_events::load(&path);
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    if !open.is_empty() {
        tracing::info!(open = open.len(), "carrying on the care events left open");
    }
    events.restore(open);
    events
}

/// Care events queued for an orion-control that is not connected, at most.
const UNSENT_MAX: usize = 256;

pub(super) fn zone_trackers(config: &orion_config::Config, zones: &Zones) -> ZoneTrackers {
    ZoneTrackers::new(settings(config), zones)
}

/// The persons of a detection as the zones see them: the bottom centre of each box,
/// normalized to the frame.
fn persons(detection: &DetectionMessage) -> Vec<Person> {
    let m = &detection.data.metadata;
    let (w, h) = (
        f64::from(m.frame_width.max(1)),
        f64::from(m.frame_height.max(1)),
    );
    detection
        .data
        .detections
        .iter()
        .map(|d| Person {
            x: (f64::from(d.bbox.x) + f64::from(d.bbox.width) / 2.0) / w,
            y: (f64::from(d.bbox.y) + f64::from(d.bbox.height)) / h,
            confidence: f64::from(d.confidence),
        })
        .collect()
}

impl Supervisor {
    /// A processed frame: its persons count for occupancy.
    pub(super) fn observe(&mut self, detection: &DetectionMessage, captured_unix_ns: u64) {
        if self.why_unknown().is_some() {
            return;
        }
        let confidences: Vec<f64> = detection
            .data
            .detections
            .iter()
            .map(|d| f64::from(d.confidence))
            .collect();
        let metadata = &detection.data.metadata;
        // A crop is judged as a crop, whatever its source; ROIs that cover the frame are
        // the frame.
        let coverage = if metadata.region == NormRect::FULL {
            Coverage::Full
        } else {
            Coverage::Region
        };
        let seq = detection.frame_seq;
        let zones = self
            .zones
            .frame(seq, captured_unix_ns, coverage, &persons(detection));
        let mut events = self.zone_events(&zones, seq);
        self.send_zones(zones);
        let boxes: Vec<(&str, f64)> = detection
            .data
            .detections
            .iter()
            .map(|d| (d.class.as_str(), f64::from(d.confidence)))
            .collect();
        events.extend(self.care_events.classes(seq, captured_unix_ns, &boxes));
        let before = self.occupancy.current().occupied;
        if self.occupancy.frame(Frame {
            seq: detection.frame_seq,
            captured_ns: captured_unix_ns,
            coverage,
            confidences: &confidences,
        }) {
            self.send_occupancy();
            let o = self.occupancy.current();
            let (now, count, since) = (o.occupied, o.count, o.since.clone().unwrap_or_default());
            events.extend(
                self.care_events
                    .occupancy(Subject::Room, now, count, seq, &since),
            );
            if now.is_some() && now != before {
                self.snapshot_on_change();
            }
        }
        self.send_events(events);
    }

    /// The zone events that `changes` make (a removed zone ends its own).
    fn zone_events(&mut self, changes: &[orion_room::zones::Change], seq: u64) -> Vec<CareEvent> {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        changes
            .iter()
            .filter_map(|(zone, occupancy)| match occupancy {
                Some(z) => {
                    let o = &z.occupancy;
                    let since = o.since.clone().unwrap_or_default();
                    self.care_events.occupancy(
                        Subject::Zone(zone.to_string()),
                        o.occupied,
                        o.count,
                        seq,
                        &since,
                    )
                }
                None => self.care_events.zone_removed(zone.as_str(), &now),
            })
            .collect()
    }

    /// Hands care events to orion-control (queued while it is away); a start or an end
    /// changes the open events, which are persisted.
    fn send_events(&mut self, events: Vec<CareEvent>) {
        if events.is_empty() {
            return;
        }
        let opened_or_closed = events.iter().any(|e| e.state != EventState::Update);
        let started = events.iter().any(|e| e.state == EventState::Start);
        for event in events {
            tracing::info!(
                event_id = %event.event_id,
                kind = %event.kind,
                zone = event.zone.as_deref().unwrap_or(""),
                state = ?event.state,
                "care event"
            );
            if self.unsent_events.len() >= UNSENT_MAX {
                self.unsent_events.pop_front();
                tracing::warn!(
                    "care events queued for orion-control overflowed; the oldest was dropped"
                );
            }
            self.unsent_events.push_back(event);
        }
        self.send_unsent_events();
        if opened_or_closed {
            self.persist();
        }
        if started {
            self.snapshot_on_event_start();
        }
    }

    /// Everything queued, if orion-control is connected.
    pub(super) fn send_unsent_events(&mut self) {
        let Some(control) = self.control_conn() else {
            return;
        };
        while let Some(event) = self.unsent_events.pop_front() {
            self.registry.send(control, &Message::Event { event });
        }
    }

    /// After any change of state: nothing detected (paused, down) makes it unknown.
    pub(super) fn gate_occupancy(&mut self) {
        if let Some(why) = self.why_unknown() {
            let zones = self.zones.unknown(&why);
            self.send_zones(zones);
            if self.occupancy.unknown(&why) {
                self.send_occupancy();
            }
        }
    }

    /// `set_zones`: kept in the desired state (persisted) and handed to the zone trackers;
    /// removed zones have their retained occupancy cleared.
    pub(super) fn room_setting(&mut self, action: &Action) -> Result<Value, AckError> {
        let Action::SetZones(zones) = action else {
            return Err(AckError::bad_request(format!(
                "{} is not a room setting",
                action.name()
            )));
        };
        let changed = self.desired.apply(action);
        if changed {
            self.persist();
            let changes = self.zones.set(zones);
            let events = self.zone_events(&changes, 0);
            self.send_zones(changes);
            self.send_events(events);
            self.gate_occupancy();
            self.push_status();
        }
        Ok(json!({"zones": zones, "changed": changed}))
    }

    pub(super) fn send_zones(&mut self, changes: Vec<orion_room::zones::Change>) {
        let Some(control) = self.control_conn() else {
            return;
        };
        for (zone, occupancy) in changes {
            self.registry
                .send(control, &Message::ZoneOccupancy { zone, occupancy });
        }
    }

    /// Every zone's answer, for an orion-control that just came up.
    pub(super) fn send_all_zones(&mut self) {
        let all = self
            .zones
            .current()
            .into_iter()
            .map(|o| (o.zone.clone(), Some(o)))
            .collect();
        self.send_zones(all);
    }

    /// Why no frame is being judged now, if none is (`orion_room::sight`).
    fn why_unknown(&self) -> Option<String> {
        let stream = self
            .children
            .get(&ProcessName::Capture)
            .and_then(|c| c.last_status.as_ref())
            .and_then(Report::capture);
        let observers = Observers {
            paused: self.desired.paused,
            detector: self.state_of(ProcessName::Detector),
            capture: self.state_of(ProcessName::Capture),
            stream: stream.map(|s| (s.state, s.last_error.as_deref())),
        };
        sight::blind(&observers).map(|b| b.to_string())
    }

    pub(super) fn occupancy_now(&self) -> &Occupancy {
        self.occupancy.current()
    }

    pub(super) fn send_occupancy(&mut self) {
        let occupancy = self.occupancy.current().clone();
        let text = serde_json::to_string(&occupancy).unwrap_or_default();
        tracing::info!(occupancy = %text, "occupancy");
        if let Some(control) = self.control_conn() {
            self.registry
                .send(control, &Message::Occupancy { occupancy });
        }
    }
}

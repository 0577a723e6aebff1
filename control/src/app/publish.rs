//! What orion-control publishes besides acks: detections (stamped here), snapshots (not
//! retained), the retained status and occupancy, and Home Assistant discovery.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use orion_protocol::status::Status;
use orion_protocol::{
    Desired, DetectionMessage, DetectorState, ModelSize, ProcessName, ProcessState, StreamState,
};

use super::{App, now_rfc3339};
use crate::discovery;
use crate::mqtt::Received;

impl App {
    /// A snapshot from oriond (after its ack, or for an occupancy change): the JPEG as it
    /// is on `{prefix}/snapshot/{id}`, not retained — a picture of the room does not stay
    /// on the broker.
    pub(super) fn snapshot(&mut self, image_base64: &str) {
        let image = match base64::engine::general_purpose::STANDARD.decode(image_base64) {
            Ok(image) => image,
            Err(e) => return tracing::warn!(error = %e, "unreadable snapshot from oriond"),
        };
        let qos = self.config.mqtt.qos.acks;
        match self
            .client
            .try_publish(&self.topics.snapshot, qos, false, image, None)
        {
            Ok(()) => self.counters.snapshots_published += 1,
            Err(e) => {
                self.counters.snapshots_dropped += 1;
                tracing::warn!(error = e, "snapshot could not be queued");
            }
        }
    }

    /// Publishes a detection, stamped here — the one publish time and latency it carries.
    pub(super) fn detection(&mut self, mut detection: DetectionMessage, captured_unix_ns: u64) {
        if !self.counters.connected {
            self.counters.detections_dropped += 1;
            return;
        }
        detection.stamp(SystemTime::now(), captured_unix_ns);
        let Ok(body) = serde_json::to_vec(&detection) else {
            return;
        };
        let qos = self.config.mqtt.qos.detections;
        match self
            .client
            .try_publish(&self.topics.detections, qos, false, body, None)
        {
            Ok(()) => self.counters.detections_published += 1,
            Err(_) => self.counters.detections_dropped += 1,
        }
    }

    /// Home Assistant discovery on connect: the configs (retained), and a subscription to
    /// Home Assistant's birth topic to send them again; with discovery off, a subscription
    /// to this instance's config topics, so any left from before are removed.
    pub(super) fn announce_to_home_assistant(&mut self) {
        let topic = if self.config.homeassistant.discovery {
            self.publish_discovery();
            discovery::birth_topic(&self.config)
        } else {
            discovery::own_configs_filter(&self.config)
        };
        if let Err(e) = self.client.try_subscribe(&topic, 0) {
            tracing::warn!(error = e, topic, "cannot subscribe for Home Assistant");
        }
    }

    pub(super) fn publish_discovery(&mut self) {
        let zones: Vec<String> = self
            .config
            .zones
            .iter()
            .map(|z| z.name().to_string())
            .chain(
                self.zones
                    .iter()
                    .filter(|(_, o)| o.is_some())
                    .map(|(n, _)| n.clone()),
            )
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for e in discovery::entities(&self.config, &self.topics, &zones) {
            let body = e.config.to_string().into_bytes();
            if self
                .client
                .try_publish(&e.topic, 1, true, body, None)
                .is_err()
            {
                tracing::warn!(topic = e.topic, "discovery config could not be queued");
            }
        }
    }

    pub(super) fn home_assistant_message(&mut self, msg: &Received) {
        let ha = &self.config.homeassistant;
        if ha.discovery && msg.topic == discovery::birth_topic(&self.config) {
            if msg.payload.as_ref() == b"online" {
                tracing::info!("Home Assistant is online; discovery sent again");
                self.publish_discovery();
            }
        } else if !ha.discovery && !msg.payload.is_empty() {
            // A config of ours from when discovery was on: removed.
            tracing::info!(topic = msg.topic, "discovery off; removing the entity");
            let _ = self
                .client
                .try_publish(&msg.topic, 1, true, Vec::new(), None);
        }
    }

    /// The retained occupancy (`{prefix}/occupancy/{id}`), at the status's QoS.
    pub(super) fn publish_occupancy(&mut self) {
        let Some(occupancy) = &self.occupancy else {
            return;
        };
        if !self.counters.connected {
            return;
        }
        let Ok(body) = serde_json::to_vec(&Stamped::new(&self.config, occupancy)) else {
            return;
        };
        let qos = self.config.mqtt.qos.status;
        let _ = self
            .client
            .try_publish(&self.topics.occupancy, qos, true, body, None);
    }

    /// A care event on `{prefix}/events/{id}`, `mqtt.qos.events` (1), not retained (a happening, not a
    /// state): queued for the broker also while reconnecting.
    pub(super) fn publish_event(&mut self, event: &orion_protocol::event::CareEvent) {
        let Ok(body) = serde_json::to_vec(event) else {
            return;
        };
        let qos = self.config.mqtt.qos.events;
        match self
            .client
            .try_publish(&self.topics.events, qos, false, body, None)
        {
            Ok(()) => self.counters.events_published += 1,
            Err(e) => {
                self.counters.events_dropped += 1;
                tracing::warn!(event_id = %event.event_id, error = e, "care event could not be queued");
            }
        }
    }

    /// Each zone's retained occupancy (`{prefix}/occupancy/{id}/{zone}`), at the status's
    /// QoS; a removed zone's is cleared (an empty retained message) once connected.
    pub(super) fn publish_zones(&mut self) {
        let zones: Vec<String> = self.zones.keys().cloned().collect();
        for zone in zones {
            self.publish_zone(&zone);
        }
    }

    pub(super) fn publish_zone(&mut self, zone: &str) {
        if !self.counters.connected {
            return;
        }
        let Some(occupancy) = self.zones.get(zone) else {
            return;
        };
        let body = match occupancy {
            Some(o) => serde_json::to_vec(&Stamped::new(&self.config, o)).unwrap_or_default(),
            None => Vec::new(),
        };
        let qos = self.config.mqtt.qos.status;
        let topic = self.topics.zone_occupancy(zone);
        let gone = occupancy.is_none();
        let sent = self
            .client
            .try_publish(&topic, qos, true, body, None)
            .is_ok();
        if sent && gone {
            self.zones.remove(zone);
            if self.config.homeassistant.discovery {
                let entity = discovery::zone_entity_topic(&self.config, zone);
                let _ = self.client.try_publish(&entity, 1, true, Vec::new(), None);
            }
        }
    }

    /// The retained status: at once when something an operator cares about changed (a
    /// process state, the stream or detector state, the desired state), else every
    /// `status_interval_s`.
    pub(super) fn publish_status(&mut self, force: bool) {
        self.report_counters();
        let Some(status) = &self.status else {
            return;
        };
        if !self.counters.connected {
            return;
        }
        let key = Significant::of(status);
        let due = self
            .status_published
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.config.mqtt.status_interval_s));
        if !force && !due && self.status_key.as_ref() == Some(&key) {
            return;
        }
        let mut status = status.clone();
        let mut mqtt = self.counters.clone();
        mqtt.commands_in_flight = self.inflight.values().map(VecDeque::len).sum();
        status.mqtt = Some(mqtt);
        status.timestamp = Some(now_rfc3339());
        status.shutdown = self.stopped_by.clone();
        let Ok(body) = serde_json::to_vec(&status) else {
            return;
        };
        let qos = self.config.mqtt.qos.status;
        if self
            .client
            .try_publish(&self.topics.status, qos, true, body, None)
            .is_ok()
        {
            self.status_key = Some(key);
            self.status_published = Some(Instant::now());
        }
    }

    /// Our counters to oriond, which keeps the last in its own status (`orionctl status`,
    /// the metrics), connected or not. A full outbox drops this one; the next comes with the
    /// next status.
    fn report_counters(&mut self) {
        let mut mqtt = self.counters.clone();
        mqtt.commands_in_flight = self.inflight.values().map(VecDeque::len).sum();
        let message = orion_protocol::Message::ControlStatus(mqtt);
        let _ = self
            .link_out
            .try_send(orion_protocol::message::encode(&message));
    }
}

/// A payload with the instance it is about, so a backend subscribed to a wildcard
/// (`care/occupancy/+`) need not parse the topic.
#[derive(serde::Serialize)]
struct Stamped<'a, T: serde::Serialize> {
    instance_id: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: serde::Serialize> Stamped<'a, T> {
    fn new(config: &'a orion_config::Config, body: &'a T) -> Self {
        Self {
            instance_id: config.instance_id.as_str(),
            body,
        }
    }
}

/// The parts of the status whose change is news.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Significant {
    processes: Vec<(ProcessName, ProcessState, Option<u32>, u32)>,
    stream: Option<StreamState>,
    detector: Option<(DetectorState, ModelSize)>,
    desired: Desired,
}

impl Significant {
    fn of(status: &Status) -> Self {
        Self {
            processes: status
                .processes
                .iter()
                .map(|p| (p.name, p.state, p.pid, p.restarts))
                .collect(),
            stream: status.stream.as_ref().map(|s| s.state),
            detector: status.detector.as_ref().map(|d| (d.state, d.model)),
            desired: status.desired.clone(),
        }
    }
}

//! The topics of one instance (docs/operations.md#3-the-mqtt-broker).

use orion_config::Config;

pub struct Topics {
    prefix: String,
    instance: String,
    pub control: String,
    pub health: String,
    pub status: String,
    pub availability: String,
    pub detections: String,
    pub occupancy: String,
    pub snapshot: String,
    pub events: String,
    /// The group command topics (`{prefix}/control/group/{group}`) with their group.
    pub groups: Vec<(String, String)>,
}

impl Topics {
    pub fn new(config: &Config) -> Self {
        let (p, id) = (&config.mqtt.prefix, &config.instance_id);
        Self {
            prefix: p.clone(),
            instance: id.to_string(),
            control: format!("{p}/control/{id}"),
            health: format!("{p}/health/{id}"),
            status: format!("{p}/status/{id}"),
            availability: format!("{p}/availability/{id}"),
            detections: format!("{p}/inferences/{id}/person_detection"),
            occupancy: format!("{p}/occupancy/{id}"),
            snapshot: format!("{p}/snapshot/{id}"),
            events: format!("{p}/events/{id}"),
            groups: config
                .mqtt
                .groups
                .iter()
                .map(|g| (format!("{p}/control/group/{g}"), g.to_string()))
                .collect(),
        }
    }

    /// The group a command topic addresses, if it is one of this room's group topics.
    pub fn group_of(&self, topic: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, g)| g.as_str())
    }

    /// A zone's retained occupancy.
    pub fn zone_occupancy(&self, zone: &str) -> String {
        format!("{}/{zone}", self.occupancy)
    }
}

/// Longest MQTT 5 response topic Orion publishes to.
pub const MAX_RESPONSE_TOPIC: usize = 256;

/// The kinds of topic Orion publishes or reads under its prefix (`{prefix}/{kind}/{id}`).
const OWN_KINDS: [&str; 9] = [
    "control",
    "health",
    "status",
    "availability",
    "inferences",
    "occupancy",
    "snapshot",
    "events",
    "config",
];

impl Topics {
    /// Why a commander's MQTT 5 response topic is refused, `None` if Orion may answer
    /// there: not a filter (`+`, `#`), not a `$` topic, bounded, and under the prefix only
    /// this instance's own, outside the kinds Orion itself publishes or reads — a commander
    /// must not make one instance speak in another's name.
    pub fn refuse_response_topic(&self, topic: &str) -> Option<String> {
        if topic.is_empty() || topic.len() > MAX_RESPONSE_TOPIC {
            return Some(format!(
                "response topic must be 1..={MAX_RESPONSE_TOPIC} bytes"
            ));
        }
        if topic.contains(['+', '#', '\0']) {
            return Some("response topic must not hold wildcards (+, #)".into());
        }
        if topic.starts_with('$') {
            return Some("response topic must not be a $ topic".into());
        }
        let mut levels = match topic.strip_prefix(&self.prefix) {
            Some(rest) if rest.starts_with('/') => rest[1..].split('/'),
            _ => return None,
        };
        let (kind, id) = (levels.next().unwrap_or(""), levels.next());
        if id != Some(self.instance.as_str()) {
            return Some(format!(
                "response topic under {}/ must belong to this instance ({}/{{kind}}/{})",
                self.prefix, self.prefix, self.instance
            ));
        }
        if OWN_KINDS.contains(&kind) {
            return Some(format!(
                "response topic must not be one of Orion's own ({}/{kind}/…)",
                self.prefix
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        let text = "instance_id = \"room-1\"\n[camera]\nsource = \"test://ball\"\n";
        Topics::new(&Config::parse(text).unwrap())
    }

    #[test]
    fn response_topics_stay_out_of_other_instances_and_filters() {
        let t = topics();
        for ok in [
            "replies/me",
            "backend/room-1/acks",
            "care/replies/room-1",
            "care/replies/room-1/x",
            "carex/control/room-2",
        ] {
            assert_eq!(t.refuse_response_topic(ok), None, "{ok}");
        }
        let long = "a".repeat(MAX_RESPONSE_TOPIC + 1);
        for (bad, why) in [
            ("", "bytes"),
            (long.as_str(), "bytes"),
            ("replies/+", "wildcards"),
            ("replies/#", "wildcards"),
            ("$SYS/broker", "$ topic"),
            ("care/replies/room-2", "this instance"),
            ("care/status", "this instance"),
            ("care/control/room-2", "this instance"),
            ("care/control/room-1", "Orion's own"),
            ("care/status/room-1", "Orion's own"),
            ("care/inferences/room-1/person_detection", "Orion's own"),
        ] {
            let got = t.refuse_response_topic(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got:?}");
        }
    }
}

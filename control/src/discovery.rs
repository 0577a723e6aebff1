//! Home Assistant MQTT discovery (`[homeassistant] discovery = true`): one device per
//! instance with Orion's availability topic, and its entities — occupancy, person count,
//! inference rate and latency, detection on/off, model size, inference rate, the snapshot
//! as a camera, a button taking one where MQTT may (`get_snapshot` is guarded), an
//! occupancy sensor per zone and the care events as an event entity. Their command
//! payloads are Orion's own JSON commands on its command topic, so there is no second
//! command path: they are checked, limited and acknowledged like any other command.
//!
//! The configs are retained, sent on every connect and again when Home Assistant announces
//! itself (`{prefix}/status` = `online`); with discovery off the same topics get an empty
//! retained payload, which removes the entities.

use orion_config::Config;
use serde_json::{Value, json};

use crate::topics::Topics;

/// One entity: its component and object id, and its config.
pub struct Entity {
    pub topic: String,
    pub config: Value,
}

/// The entities of this instance, each with its discovery topic; `zones`: the zones known
/// now (the config's and any set since), each an occupancy binary sensor.
pub fn entities(config: &Config, topics: &Topics, zones: &[String]) -> Vec<Entity> {
    let id = config.instance_id.to_string();
    let node = node(config);
    let name = if config.room_id.is_empty() {
        format!("Orion {id}")
    } else {
        format!("Orion {}", config.room_id)
    };
    let mut device = json!({
        "identifiers": [format!("orion-{id}")],
        "name": name,
        "manufacturer": "Orion",
        "model": "Orion care-room sensor",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    if !config.room_id.is_empty() {
        device["suggested_area"] = json!(config.room_id);
    }
    let common = |object: &str, name: &str| {
        json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "object_id": format!("{node}_{object}"),
            "device": device,
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
        })
    };
    let with = |mut base: Value, more: Value| {
        if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
            b.extend(m);
        }
        base
    };
    let mut list: Vec<(String, String, Value)> = [
        (
            "binary_sensor",
            "occupancy",
            with(
                common("occupancy", "Occupancy"),
                json!({
                    "device_class": "occupancy",
                    "state_topic": topics.occupancy,
                    // null (paused, camera down) is unknown, never a stale on/off.
                    "value_template": "{% if value_json.occupied is none %}None{% elif value_json.occupied %}ON{% else %}OFF{% endif %}",
                    "json_attributes_topic": topics.occupancy,
                }),
            ),
        ),
        (
            "sensor",
            "persons",
            with(
                common("persons", "Persons"),
                json!({
                    "state_topic": topics.occupancy,
                    "value_template": "{{ value_json.count }}",
                    "state_class": "measurement",
                    "icon": "mdi:account-multiple",
                }),
            ),
        ),
        (
            "sensor",
            "inference_fps",
            with(
                common("inference_fps", "Inference rate"),
                json!({
                    "state_topic": topics.status,
                    "value_template": "{{ value_json.detector.inference_fps | round(1) }}",
                    "unit_of_measurement": "fps",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                }),
            ),
        ),
        (
            "sensor",
            "latency",
            with(
                common("latency", "Detection latency"),
                json!({
                    "state_topic": topics.status,
                    "value_template": "{{ value_json.detector.last_result_latency_ms | round(0) }}",
                    "unit_of_measurement": "ms",
                    "device_class": "duration",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                }),
            ),
        ),
        (
            "switch",
            "detection",
            with(
                common("detection", "Detection"),
                json!({
                    "command_topic": topics.control,
                    "payload_on": json!({"command": "resume_inference"}).to_string(),
                    "payload_off": json!({"command": "pause_inference"}).to_string(),
                    "state_topic": topics.status,
                    "value_template": "{{ 'OFF' if value_json.desired.paused else 'ON' }}",
                    "state_on": "ON",
                    "state_off": "OFF",
                    "icon": "mdi:motion-sensor",
                }),
            ),
        ),
        (
            "select",
            "model_size",
            with(
                common("model_size", "Model size"),
                json!({
                    "command_topic": topics.control,
                    "command_template": "{\"command\": \"set_model_size\", \"params\": {\"size\": \"{{ value }}\"}}",
                    "options": ["n", "s", "m", "l", "x"],
                    "state_topic": topics.status,
                    "value_template": "{{ value_json.desired.model_size }}",
                    "entity_category": "config",
                }),
            ),
        ),
        (
            "number",
            "inference_rate",
            with(
                common("inference_rate", "Inference rate setting"),
                json!({
                    "command_topic": topics.control,
                    "command_template": "{\"command\": \"set_inference_rate\", \"params\": {\"rate_hz\": {{ value }}}}",
                    "min": 0.1,
                    "max": 30,
                    "step": 0.1,
                    "mode": "box",
                    "unit_of_measurement": "Hz",
                    "state_topic": topics.status,
                    "value_template": "{{ value_json.desired.rate_hz }}",
                    "entity_category": "config",
                }),
            ),
        ),
        (
            "camera",
            "snapshot",
            with(
                common("snapshot", "Snapshot"),
                json!({ "topic": topics.snapshot }),
            ),
        ),
    ]
    .into_iter()
    .map(|(c, o, v)| (c.to_string(), o.to_string(), v))
    .collect();
    for zone in zones {
        list.push(zone_entity(zone, topics, &common, &with));
    }
    let mut event_types: Vec<String> = Vec::new();
    let kinds = ["room".to_string(), "zone".to_string()]
        .into_iter()
        .chain(config.events.classes.iter().map(|c| c.class.clone()));
    for kind in kinds {
        for state in ["start", "update", "end"] {
            event_types.push(format!("{kind}_{state}"));
        }
    }
    list.push((
        "event".into(),
        "care_events".into(),
        with(
            common("care_events", "Care events"),
            json!({
                "state_topic": topics.events,
                "event_types": event_types,
                // The event's type and state name it; its id, zone and times ride along.
                "value_template": "{\"event_type\": \"{{ value_json.type }}_{{ value_json.state }}\", \"event_id\": \"{{ value_json.event_id }}\", \"zone\": \"{{ value_json.zone or '' }}\", \"start\": \"{{ value_json.start }}\", \"end\": \"{{ value_json.end or '' }}\", \"max_count\": {{ value_json.max_count }}}",
                "icon": "mdi:bell-ring",
            }),
        ),
    ));
    if config.mqtt.allows("get_snapshot") {
        list.push((
            "button".into(),
            "take_snapshot".into(),
            with(
                common("take_snapshot", "Take snapshot"),
                json!({
                    "command_topic": topics.control,
                    "payload_press": json!({"command": "get_snapshot"}).to_string(),
                    "icon": "mdi:camera",
                }),
            ),
        ));
    }
    let prefix = &config.homeassistant.prefix;
    list.into_iter()
        .map(|(component, object, config)| Entity {
            topic: format!("{prefix}/{component}/{node}/{object}/config"),
            config,
        })
        .collect()
}

/// A zone's occupancy as a binary sensor (`zone_{name}`).
fn zone_entity(
    zone: &str,
    topics: &Topics,
    common: &dyn Fn(&str, &str) -> Value,
    with: &dyn Fn(Value, Value) -> Value,
) -> (String, String, Value) {
    let object = format!("zone_{}", zone.replace('-', "_"));
    let state = topics.zone_occupancy(zone);
    (
        "binary_sensor".into(),
        object.clone(),
        with(
            common(&object, &format!("Occupancy {zone}")),
            json!({
                "device_class": "occupancy",
                "state_topic": state,
                "value_template": "{% if value_json.occupied is none %}None{% elif value_json.occupied %}ON{% else %}OFF{% endif %}",
                "json_attributes_topic": state,
            }),
        ),
    )
}

/// A removed zone's discovery topic (an empty retained config there removes the entity).
pub fn zone_entity_topic(config: &Config, zone: &str) -> String {
    format!(
        "{}/binary_sensor/{}/zone_{}/config",
        config.homeassistant.prefix,
        node(config),
        zone.replace('-', "_")
    )
}

/// The node id of this instance in discovery topics.
fn node(config: &Config) -> String {
    format!("orion_{}", config.instance_id.to_string().replace('-', "_"))
}

/// Every discovery config topic of this instance (to find and remove old ones).
pub fn own_configs_filter(config: &Config) -> String {
    format!(
        "{}/+/{}/+/config",
        config.homeassistant.prefix,
        node(config)
    )
}

/// Home Assistant's birth topic: `online` there means "send your configs again".
pub fn birth_topic(config: &Config) -> String {
    format!("{}/status", config.homeassistant.prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_has_what_its_component_requires_and_is_this_instances() {
        let config = Config::parse(
            "instance_id = \"room-1\"\nroom_id = \"Room 1\"\n[camera]\nsource = \"test://\"\n[homeassistant]\ndiscovery = true\n",
        )
        .unwrap();
        let topics = Topics::new(&config);
        let all = entities(&config, &topics, &["bed".to_string()]);
        assert_eq!(all.len(), 10);
        for e in &all {
            let c = &e.config;
            let component = e.topic.split('/').nth(1).unwrap();
            assert!(e.topic.starts_with("homeassistant/"), "{}", e.topic);
            assert!(e.topic.contains("/orion_room_1/"), "{}", e.topic);
            assert!(
                c["unique_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("orion_room_1_")
            );
            assert_eq!(c["device"]["identifiers"][0], "orion-room-1");
            assert_eq!(c["availability_topic"], "care/availability/room-1");
            let required: &[&str] = match component {
                "binary_sensor" | "sensor" => &["state_topic"],
                "switch" | "number" => &["command_topic"],
                "select" => &["command_topic", "options"],
                "camera" => &["topic"],
                "event" => &["state_topic", "event_types"],
                other => panic!("unexpected component {other}"),
            };
            for key in required {
                assert!(!c[key].is_null(), "{}: {key} missing", e.topic);
            }
            if let Some(cmd) = c["command_topic"].as_str() {
                assert_eq!(cmd, "care/control/room-1");
            }
        }
    }
}

//! Home Assistant MQTT discovery (`[homeassistant] discovery = true`): one device per
//! instance with Orion's availability topic, and its entities — occupancy, person count,
//! a camera problem, inference rate and latency, detection and auto-focus on/off, model
//! size, inference rate, the snapshot as a camera, a button taking one where MQTT may
//! (`get_snapshot` is guarded), an occupancy sensor per zone and the care events as an
//! event entity. Their command payloads are Orion's own JSON commands on its command topic,
//! so there is no second command path: they are checked, limited and acknowledged like any
//! other command.
//!
//! The configs follow Home Assistant's current schema: `default_entity_id` (`object_id` was
//! removed in 2026.4), an `origin` block, and templates that render `None` (unknown) rather
//! than fail when a field is null (no detector yet, camera down).
//!
//! The configs are retained, sent on every connect and again when Home Assistant announces
//! itself (`{prefix}/status` = `online`); with discovery off the same topics get an empty
//! retained payload, which removes the entities.

use orion_config::Config;
use serde_json::{Value, json};

use crate::topics::Topics;

/// One entity: its discovery topic and its config.
pub struct Entity {
    pub topic: String,
    pub config: Value,
}

/// An entity before the fields every entity shares are added.
struct Spec {
    component: &'static str,
    /// The object id: the last part of the entity id and of the discovery topic.
    object: String,
    name: String,
    fields: Value,
}

impl Spec {
    fn new(component: &'static str, object: &str, name: &str, fields: Value) -> Self {
        Self {
            component,
            object: object.to_string(),
            name: name.to_string(),
            fields,
        }
    }
}

/// On/off from `occupied`; null (paused, camera down) is unknown, never a stale on/off.
const OCCUPIED_TEMPLATE: &str = "{% if value_json.occupied is none %}None{% elif value_json.occupied %}ON{% else %}OFF{% endif %}";

/// A detector figure from the status, `None` (unknown) while there is no detector report.
fn detector_template(field: &str, digits: u32) -> String {
    format!(
        "{{% if value_json.detector %}}{{{{ value_json.detector.{field} | round({digits}) }}}}{{% else %}}None{{% endif %}}"
    )
}

/// The stream's state as a problem: running is fine, connecting is not known yet, anything
/// else (stalled, reconnecting, no report from the capture at all) is a problem.
const CAMERA_PROBLEM_TEMPLATE: &str = "{% if not value_json.stream %}ON{% elif value_json.stream.state == 'running' %}OFF{% elif value_json.stream.state == 'connecting' %}None{% else %}ON{% endif %}";

/// The entities of this instance, each with its discovery topic; `zones`: the zones known
/// now (the config's and any set since), each an occupancy binary sensor.
pub fn entities(config: &Config, topics: &Topics, zones: &[String]) -> Vec<Entity> {
    let node = node(config);
    let shared = shared_fields(config, topics);
    let prefix = &config.homeassistant.prefix;
    specs(config, topics, zones)
        .into_iter()
        .map(|spec| {
            let mut entity = shared.clone();
            if let (Some(e), Value::Object(more)) = (entity.as_object_mut(), spec.fields) {
                e.insert("name".into(), json!(spec.name));
                let id = format!("{node}_{}", spec.object);
                e.insert(
                    "default_entity_id".into(),
                    // Entity ids are lowercase; the unique id keeps the instance's case.
                    json!(format!("{}.{}", spec.component, id.to_lowercase())),
                );
                e.insert("unique_id".into(), json!(id));
                e.extend(more);
            }
            Entity {
                topic: format!("{prefix}/{}/{node}/{}/config", spec.component, spec.object),
                config: entity,
            }
        })
        .collect()
}

/// What every entity of this instance carries: its device, origin and availability.
fn shared_fields(config: &Config, topics: &Topics) -> Value {
    let id = config.instance_id.to_string();
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
    json!({
        "device": device,
        "origin": {
            "name": "Orion",
            "sw_version": env!("CARGO_PKG_VERSION"),
            "support_url": env!("CARGO_PKG_REPOSITORY"),
        },
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
    })
}

/// Every entity of this instance without the shared fields.
fn specs(config: &Config, topics: &Topics, zones: &[String]) -> Vec<Spec> {
    let mut list = vec![
        Spec::new(
            "binary_sensor",
            "occupancy",
            "Occupancy",
            json!({
                "device_class": "occupancy",
                "state_topic": topics.occupancy,
                "value_template": OCCUPIED_TEMPLATE,
                "json_attributes_topic": topics.occupancy,
            }),
        ),
        Spec::new(
            "sensor",
            "persons",
            "Persons",
            json!({
                "state_topic": topics.occupancy,
                "value_template": "{{ value_json.count }}",
                "state_class": "measurement",
                "icon": "mdi:account-multiple",
            }),
        ),
        Spec::new(
            "binary_sensor",
            "camera_problem",
            "Camera problem",
            json!({
                "device_class": "problem",
                "state_topic": topics.status,
                "value_template": CAMERA_PROBLEM_TEMPLATE,
                "entity_category": "diagnostic",
            }),
        ),
        Spec::new(
            "sensor",
            "inference_fps",
            "Inference rate",
            json!({
                "state_topic": topics.status,
                "value_template": detector_template("inference_fps", 1),
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            }),
        ),
        Spec::new(
            "sensor",
            "latency",
            "Detection latency",
            json!({
                "state_topic": topics.status,
                "value_template": detector_template("last_result_latency_ms", 0),
                "unit_of_measurement": "ms",
                "device_class": "duration",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            }),
        ),
        Spec::new(
            "switch",
            "detection",
            "Detection",
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
        Spec::new(
            "select",
            "model_size",
            "Model size",
            json!({
                "command_topic": topics.control,
                "command_template": "{\"command\": \"set_model_size\", \"params\": {\"size\": \"{{ value }}\"}}",
                "options": ["n", "s", "m", "l", "x"],
                "state_topic": topics.status,
                "value_template": "{{ value_json.desired.model_size }}",
                "entity_category": "config",
            }),
        ),
        Spec::new(
            "number",
            "inference_rate",
            "Inference rate setting",
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
        Spec::new(
            "camera",
            "snapshot",
            "Snapshot",
            json!({ "topic": topics.snapshot }),
        ),
    ];
    if config.mqtt.allows("enable_auto_focus") && config.mqtt.allows("disable_auto_focus") {
        list.push(Spec::new(
            "switch",
            "auto_focus",
            "Auto-focus",
            json!({
                "command_topic": topics.control,
                "payload_on": json!({"command": "enable_auto_focus"}).to_string(),
                "payload_off": json!({"command": "disable_auto_focus"}).to_string(),
                "state_topic": topics.status,
                "value_template": "{{ 'ON' if value_json.desired.auto_focus else 'OFF' }}",
                "state_on": "ON",
                "state_off": "OFF",
                "icon": "mdi:image-filter-center-focus",
                "entity_category": "config",
            }),
        ));
    }
    list.extend(zones.iter().map(|zone| zone_spec(zone, topics)));
    list.push(events_spec(config, topics));
    if config.mqtt.allows("get_snapshot") {
        list.push(Spec::new(
            "button",
            "take_snapshot",
            "Take snapshot",
            json!({
                "command_topic": topics.control,
                "payload_press": json!({"command": "get_snapshot"}).to_string(),
                "icon": "mdi:camera",
            }),
        ));
    }
    list
}

/// The care events as one event entity: `{type}_{state}` for the room, zones and classes.
fn events_spec(config: &Config, topics: &Topics) -> Spec {
    let kinds = ["room".to_string(), "zone".to_string()]
        .into_iter()
        .chain(config.events.classes.iter().map(|c| c.class.clone()));
    let event_types: Vec<String> = kinds
        .flat_map(|kind| ["start", "update", "end"].map(|state| format!("{kind}_{state}")))
        .collect();
    Spec::new(
        "event",
        "care_events",
        "Care events",
        json!({
            "state_topic": topics.events,
            "event_types": event_types,
            // The event's type and state name it; its id, zone and times ride along.
            "value_template": "{\"event_type\": \"{{ value_json.type }}_{{ value_json.state }}\", \"event_id\": \"{{ value_json.event_id }}\", \"zone\": \"{{ value_json.zone or '' }}\", \"start\": \"{{ value_json.start }}\", \"end\": \"{{ value_json.end or '' }}\", \"max_count\": {{ value_json.max_count }}}",
            "icon": "mdi:bell-ring",
        }),
    )
}

/// A zone's occupancy as a binary sensor (`zone_{name}`).
fn zone_spec(zone: &str, topics: &Topics) -> Spec {
    let state = topics.zone_occupancy(zone);
    Spec::new(
        "binary_sensor",
        &zone_object(zone),
        &format!("Occupancy {zone}"),
        json!({
            "device_class": "occupancy",
            "state_topic": state,
            "value_template": OCCUPIED_TEMPLATE,
            "json_attributes_topic": state,
        }),
    )
}

fn zone_object(zone: &str) -> String {
    format!("zone_{}", zone.replace('-', "_"))
}

/// A removed zone's discovery topic (an empty retained config there removes the entity).
pub fn zone_entity_topic(config: &Config, zone: &str) -> String {
    format!(
        "{}/binary_sensor/{}/{}/config",
        config.homeassistant.prefix,
        node(config),
        zone_object(zone)
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
    use orion_tests::homeassistant::{check, render_state};

    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(&format!(
            "instance_id = \"Room_1\"\nroom_id = \"Room 1\"\n[camera]\nsource = \"test://\"\n\
             [homeassistant]\ndiscovery = true\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn every_config_passes_home_assistants_schema_and_is_this_instances() {
        let config = config("");
        let topics = Topics::new(&config);
        let all = entities(&config, &topics, &["bed".to_string()]);
        // 9 fixed, auto-focus (allowed by default), one zone, the events; no snapshot
        // button (get_snapshot is guarded).
        assert_eq!(all.len(), 12);
        for e in &all {
            let problems = check(&e.topic, &e.config);
            assert!(problems.is_empty(), "{problems:#?}");
            assert!(e.topic.contains("/orion_Room_1/"), "{}", e.topic);
            assert_eq!(e.config["device"]["identifiers"][0], "orion-Room_1");
            assert_eq!(e.config["availability_topic"], "care/availability/Room_1");
            if let Some(cmd) = e.config["command_topic"].as_str() {
                assert_eq!(cmd, "care/control/Room_1");
            }
        }
    }

    #[test]
    fn the_checker_refuses_what_home_assistant_removed_or_never_had() {
        let config = config("");
        let topics = Topics::new(&config);
        let mut e = entities(&config, &topics, &[]).remove(0);
        assert!(check(&e.topic, &e.config).is_empty());
        e.config["object_id"] = json!("orion_room_1_occupancy");
        e.config["state_class"] = json!("measurement");
        e.config["default_entity_id"] = json!("sensor.Orion");
        let problems = check(&e.topic, &e.config);
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    /// Status and occupancy payloads as they are with fields null: no detector report yet,
    /// no capture report (camera down), occupancy unknown; then with everything there.
    #[test]
    fn templates_give_unknown_rather_than_an_error_when_a_field_is_null() {
        let config = config("[mqtt]\nallowed_commands = [\"get_status\", \"get_snapshot\"]");
        let topics = Topics::new(&config);
        let all = entities(&config, &topics, &["bed".to_string()]);
        let desired =
            json!({"paused": false, "model_size": "n", "rate_hz": 5.0, "auto_focus": false});
        let empty_status = json!({"detector": null, "stream": null, "desired": desired});
        let full_status = json!({
            "detector": {"inference_fps": 4.96, "last_result_latency_ms": 61.4},
            "stream": {"state": "running"},
            "desired": desired,
        });
        let unknown = json!({"occupied": null, "count": 0});
        let occupied = json!({"occupied": true, "count": 2});
        let event = json!({"type": "zone", "state": "start", "event_id": "e1", "zone": "bed",
                           "start": "2026-12-07T10:00:00Z", "end": null, "max_count": 1});
        let mut states = Vec::new();
        for e in &all {
            let Some(state_topic) = e.config["state_topic"].as_str() else {
                continue;
            };
            let payloads = if state_topic == topics.status {
                vec![empty_status.clone(), full_status.clone()]
            } else if state_topic == topics.events {
                vec![event.clone()]
            } else {
                vec![unknown.clone(), occupied.clone()]
            };
            for p in payloads {
                let state = render_state(&e.topic, &e.config, &p).unwrap();
                states.push((e.config["unique_id"].as_str().unwrap().to_string(), state));
            }
        }
        let state = |id: &str, nth: usize| {
            states
                .iter()
                .filter(|(u, _)| u == &format!("orion_Room_1_{id}"))
                .nth(nth)
                .map(|(_, s)| s.clone())
                .unwrap()
        };
        assert_eq!(state("occupancy", 0), "None");
        assert_eq!(state("occupancy", 1), "ON");
        assert_eq!(state("zone_bed", 0), "None");
        assert_eq!(state("inference_fps", 0), "None");
        assert_eq!(state("inference_fps", 1), "5.0");
        assert_eq!(state("latency", 0), "None");
        assert_eq!(state("latency", 1), "61.0");
        assert_eq!(
            state("camera_problem", 0),
            "ON",
            "no capture report is a problem"
        );
        assert_eq!(state("camera_problem", 1), "OFF");
        assert_eq!(state("detection", 0), "ON");
        assert_eq!(state("model_size", 0), "n");
        // auto_focus not allowed over MQTT here: no switch for it.
        assert!(states.iter().all(|(u, _)| !u.ends_with("auto_focus")));
    }
}

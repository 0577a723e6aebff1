//! Home Assistant's MQTT discovery rules, as a checker for the configs Orion announces: the
//! keys each component accepts (an unknown or removed key is an error, `object_id` among
//! them), what each requires, the shape of `device`, `origin` and `default_entity_id`, and
//! the templates rendered as Home Assistant renders them (Jinja) against real payloads, so
//! that a null field gives `None` (unknown) rather than a template error.
//!
//! The key lists follow Home Assistant's MQTT integration documentation (2026); a key Orion
//! starts to use must be added here from there, never guessed.

use std::collections::BTreeSet;

use minijinja::Environment;
use serde_json::Value;

/// Keys every MQTT entity accepts.
const COMMON: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "origin",
    "payload_available",
    "payload_not_available",
    "platform",
    "qos",
    "unique_id",
];

/// Keys Home Assistant removed or deprecated: a config carrying one is refused or warned
/// about on every start.
const REMOVED: &[&str] = &["object_id", "hold_command_topic", "json_attributes"];

/// One component's rules.
struct Component {
    keys: &'static [&'static str],
    required: &'static [&'static str],
    device_classes: &'static [&'static str],
    /// Entity categories allowed (sensors cannot be `config`).
    categories: &'static [&'static str],
}

fn component(name: &str) -> Option<Component> {
    let c = match name {
        "binary_sensor" => Component {
            keys: &[
                "device_class",
                "expire_after",
                "force_update",
                "off_delay",
                "payload_off",
                "payload_on",
                "state_topic",
                "value_template",
            ],
            required: &["state_topic"],
            device_classes: &[
                "battery",
                "battery_charging",
                "carbon_monoxide",
                "cold",
                "connectivity",
                "door",
                "garage_door",
                "gas",
                "heat",
                "light",
                "lock",
                "moisture",
                "motion",
                "moving",
                "occupancy",
                "opening",
                "plug",
                "power",
                "presence",
                "problem",
                "running",
                "safety",
                "smoke",
                "sound",
                "tamper",
                "update",
                "vibration",
                "window",
            ],
            categories: &["diagnostic"],
        },
        "sensor" => Component {
            keys: &[
                "device_class",
                "expire_after",
                "force_update",
                "last_reset_value_template",
                "options",
                "state_class",
                "state_topic",
                "suggested_display_precision",
                "unit_of_measurement",
                "value_template",
            ],
            required: &["state_topic"],
            device_classes: &["duration", "frequency", "data_rate", "data_size", "enum"],
            categories: &["diagnostic"],
        },
        "switch" => Component {
            keys: &[
                "command_template",
                "command_topic",
                "device_class",
                "optimistic",
                "payload_off",
                "payload_on",
                "retain",
                "state_off",
                "state_on",
                "state_topic",
                "value_template",
            ],
            required: &["command_topic"],
            device_classes: &["outlet", "switch"],
            categories: &["config", "diagnostic"],
        },
        "select" => Component {
            keys: &[
                "command_template",
                "command_topic",
                "optimistic",
                "options",
                "retain",
                "state_topic",
                "value_template",
            ],
            required: &["command_topic", "options"],
            device_classes: &[],
            categories: &["config", "diagnostic"],
        },
        "number" => Component {
            keys: &[
                "command_template",
                "command_topic",
                "device_class",
                "max",
                "min",
                "mode",
                "optimistic",
                "payload_reset",
                "retain",
                "state_topic",
                "step",
                "unit_of_measurement",
                "value_template",
            ],
            required: &["command_topic"],
            device_classes: &["duration", "frequency"],
            categories: &["config", "diagnostic"],
        },
        "camera" => Component {
            keys: &["image_encoding", "topic"],
            required: &["topic"],
            device_classes: &[],
            categories: &["diagnostic"],
        },
        "button" => Component {
            keys: &[
                "command_template",
                "command_topic",
                "device_class",
                "payload_press",
                "retain",
            ],
            required: &["command_topic"],
            device_classes: &["identify", "restart", "update"],
            categories: &["config", "diagnostic"],
        },
        "event" => Component {
            keys: &[
                "device_class",
                "event_types",
                "state_topic",
                "value_template",
            ],
            required: &["state_topic", "event_types"],
            device_classes: &["button", "doorbell", "motion"],
            categories: &["diagnostic"],
        },
        _ => return None,
    };
    Some(c)
}

/// Checks one discovery config published on `topic`
/// (`{prefix}/{component}/{node}/{object}/config`): every problem found, empty if none.
pub fn check(topic: &str, config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = topic.split('/').collect();
    let [_, component_name, _node, object, "config"] = parts[..] else {
        return vec![format!("{topic}: not a discovery config topic")];
    };
    let Some(rules) = component(component_name) else {
        return vec![format!("{topic}: no component {component_name}")];
    };
    let Some(fields) = config.as_object() else {
        return vec![format!("{topic}: the config is not a JSON object")];
    };
    let allowed: BTreeSet<&str> = COMMON.iter().chain(rules.keys).copied().collect();
    for key in fields.keys() {
        if REMOVED.contains(&key.as_str()) {
            problems.push(format!("{topic}: {key} was removed by Home Assistant"));
        } else if !allowed.contains(key.as_str()) {
            problems.push(format!("{topic}: {component_name} has no key {key}"));
        }
    }
    for key in rules.required {
        if config[key].is_null() {
            problems.push(format!("{topic}: {key} is required"));
        }
    }
    let entity_id = config["default_entity_id"].as_str().unwrap_or_default();
    let slug = entity_id
        .strip_prefix(&format!("{component_name}."))
        .unwrap_or_default();
    if slug.is_empty()
        || !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        problems.push(format!(
            "{topic}: default_entity_id {entity_id:?} is not {component_name}.<lowercase slug>"
        ));
    }
    if config["unique_id"].as_str().is_none_or(str::is_empty) {
        problems.push(format!("{topic}: no unique_id"));
    }
    if !object
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problems.push(format!(
            "{topic}: object id {object} has characters HA refuses"
        ));
    }
    let device = &config["device"];
    let ids = device["identifiers"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if !ids || device["name"].as_str().is_none() {
        problems.push(format!("{topic}: device needs identifiers and a name"));
    }
    if config["origin"]["name"].as_str().is_none_or(str::is_empty) {
        problems.push(format!("{topic}: origin needs a name"));
    }
    if let Some(class) = config["device_class"].as_str()
        && !rules.device_classes.contains(&class)
    {
        problems.push(format!(
            "{topic}: {component_name} has no device class {class}"
        ));
    }
    if let Some(category) = config["entity_category"].as_str()
        && !rules.categories.contains(&category)
    {
        problems.push(format!(
            "{topic}: entity_category {category} is not allowed here"
        ));
    }
    if config["device_class"] == "duration" && config["unit_of_measurement"].is_null() {
        problems.push(format!("{topic}: a duration needs a unit"));
    }
    for key in ["value_template", "command_template"] {
        if let Some(t) = config[key].as_str()
            && let Err(e) = Environment::new().template_from_str(t)
        {
            problems.push(format!("{topic}: {key} is not a template: {e}"));
        }
    }
    problems
}

/// Renders `config`'s `value_template` against `payload` as Home Assistant would, and
/// checks the result is a state the component takes: `None` (unknown) always is.
pub fn render_state(topic: &str, config: &Value, payload: &Value) -> Result<String, String> {
    let component = topic.split('/').nth(1).unwrap_or_default();
    let template = config["value_template"].as_str().unwrap_or("{{ value }}");
    let env = Environment::new();
    let rendered = env
        .render_str(template, minijinja::context! { value_json => payload })
        .map_err(|e| format!("{topic}: {template} on {payload}: {e}"))?;
    let state = rendered.trim().to_string();
    let text = |key: &str, default: &str| config[key].as_str().unwrap_or(default).to_string();
    let ok = state == "None"
        || match component {
            "binary_sensor" => {
                state == text("payload_on", "ON") || state == text("payload_off", "OFF")
            }
            "switch" => state == text("state_on", "ON") || state == text("state_off", "OFF"),
            "sensor"
                if config["unit_of_measurement"].is_string()
                    || config["state_class"].is_string() =>
            {
                state.parse::<f64>().is_ok()
            }
            "number" => state.parse::<f64>().is_ok(),
            "select" => config["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|v| v == state.as_str())),
            "event" => serde_json::from_str::<Value>(&state).is_ok_and(|e| {
                config["event_types"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|v| *v == e["event_type"]))
            }),
            _ => true,
        };
    if ok {
        Ok(state)
    } else {
        Err(format!(
            "{topic}: {state:?} is no state of a {component} (from {payload})"
        ))
    }
}

//! One JSON object per line on stdout.

use serde_json::{Map, Value, json};

/// Prints `{"bench": name, "value": value, "unit": unit, ...extra}`.
pub fn line(name: &str, value: f64, unit: &str, extra: Value) {
    let mut obj = Map::new();
    obj.insert("bench".into(), json!(name));
    obj.insert("value".into(), json!(round(value)));
    obj.insert("unit".into(), json!(unit));
    if let Value::Object(more) = extra {
        obj.extend(more);
    }
    println!("{}", Value::Object(obj));
}

/// Three significant decimals are plenty and keep lines readable.
pub fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

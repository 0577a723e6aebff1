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

/// A line whose value is the `p`-th percentile of `samples`, with their count, median and
/// maximum beside it (and `extra`).
pub fn percentile_line(
    name: &str,
    samples: &[f64],
    p: f64,
    unit: &str,
    extra: Value,
) -> anyhow::Result<()> {
    use crate::stats::{median, percentile};
    let value = percentile(samples, p).ok_or_else(|| anyhow::anyhow!("{name}: no samples"))?;
    let mut fields = json!({
        "samples": samples.len(),
        "median": round(median(samples).unwrap_or(0.0)),
        "max": round(samples.iter().copied().fold(f64::MIN, f64::max)),
    });
    if let (Value::Object(f), Value::Object(more)) = (&mut fields, extra) {
        f.extend(more);
    }
    line(name, value, unit, fields);
    Ok(())
}

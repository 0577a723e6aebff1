//! `orionctl model` and `orionctl rate` without an argument, on a terminal: the choices with
//! what this box measured (`get_status`: the sizes in the model directory, their inference
//! times, the gap in results at the last capture switch), a confirmation, then the change
//! and its ack, as with an argument. The texts are built by pure functions of the status
//! (tested below); only `ask` touches the terminal.

use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use orion_protocol::{ModelSize, RateHz};
use serde_json::Value;

/// One size on disk, with what was measured of it.
#[derive(Debug, PartialEq)]
pub struct SizeChoice {
    pub size: ModelSize,
    pub line: String,
}

fn ms(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// The sizes present on disk, each with its inputs and measured inference times.
pub fn model_choices(status: &Value) -> Vec<SizeChoice> {
    let current = status["desired"]["model_size"].as_str().unwrap_or("");
    let measured = &status["measured"]["inference_ms"];
    let Some(on_disk) = status["models_on_disk"].as_object() else {
        return Vec::new();
    };
    ModelSize::ALL
        .into_iter()
        .filter_map(|size| {
            let letter = size.to_string();
            let inputs = on_disk.get(&letter)?.as_array()?;
            let inputs: Vec<u64> = inputs.iter().filter_map(Value::as_u64).collect();
            let times: Vec<String> = inputs
                .iter()
                .filter_map(|i| {
                    ms(&measured[&letter][i.to_string()]).map(|t| format!("{i}: {t:.0} ms"))
                })
                .collect();
            let inputs_text = inputs
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("+");
            let times = if times.is_empty() {
                "not measured on this box yet".to_string()
            } else {
                format!("inference {}", times.join(", "))
            };
            let mark = if letter == current { "   ← now" } else { "" };
            Some(SizeChoice {
                size,
                line: format!("  {letter}  input {inputs_text:<8} {times}{mark}"),
            })
        })
        .collect()
}

/// What the operator reads before choosing a rate.
pub fn rate_summary(status: &Value) -> String {
    let now = status["desired"]["rate_hz"].as_f64().unwrap_or(0.0);
    let mut lines = vec![format!(
        "Inference rate now {now} Hz (allowed {}..={} Hz). A change restarts only the capture.",
        RateHz::MIN,
        RateHz::MAX
    )];
    let m = &status["measured"];
    lines.push(match ms(&m["capture_switch_gap_ms"]) {
        Some(gap) => match ms(&m["steady_interval_ms"]) {
            Some(steady) => format!(
                "Last capture switch measured here: results paused {gap:.0} ms (steady interval {steady:.0} ms)."
            ),
            None => format!("Last capture switch measured here: results paused {gap:.0} ms."),
        },
        None => "No capture switch measured on this box yet.".to_string(),
    });
    let size = status["desired"]["model_size"].as_str().unwrap_or("");
    let slowest = m["inference_ms"][size]
        .as_object()
        .and_then(|t| t.values().filter_map(ms).reduce(f64::max));
    if let Some(t) = slowest.filter(|t| *t > 0.0) {
        lines.push(format!(
            "Model {size} infers in {t:.0} ms here: above {:.1} Hz frames are skipped.",
            1000.0 / t
        ));
    }
    lines.join("\n")
}

/// Reads one answer; `None` at end of input.
fn ask(question: &str) -> Result<Option<String>> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_string()))
}

fn confirmed(question: &str) -> Result<bool> {
    Ok(matches!(
        ask(&format!("{question} [y/N]: "))?.as_deref(),
        Some("y" | "Y" | "yes")
    ))
}

/// Asks for a size among `choices`; `None` when the operator keeps the current one.
pub fn choose_model(status: &Value) -> Result<Option<ModelSize>> {
    let choices = model_choices(status);
    if choices.is_empty() {
        bail!(
            "no model files found in the model directory (orion-setup --models-from DIR installs them)"
        );
    }
    println!("Model sizes in the model directory (times measured on this box):");
    for c in &choices {
        println!("{}", c.line);
    }
    let letters: Vec<String> = choices.iter().map(|c| c.size.to_string()).collect();
    let current = status["desired"]["model_size"].as_str().unwrap_or("?");
    let Some(answer) = ask(&format!(
        "Size [{}] (Enter: keep {current}): ",
        letters.join("/")
    ))?
    else {
        return Ok(None);
    };
    if answer.is_empty() || answer == current {
        return Ok(None);
    }
    if !letters.contains(&answer) {
        bail!("{answer:?} is not one of {}", letters.join(", "));
    }
    let size: ModelSize = answer.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    if !confirmed(&format!(
        "Switch the model to {size}? It loads beside the current one; detection does not pause."
    ))? {
        return Ok(None);
    }
    Ok(Some(size))
}

/// Asks for a rate; `None` when the operator keeps the current one.
pub fn choose_rate(status: &Value) -> Result<Option<RateHz>> {
    println!("{}", rate_summary(status));
    let now = status["desired"]["rate_hz"].as_f64().unwrap_or(0.0);
    let Some(answer) = ask(&format!("Rate in Hz (Enter: keep {now}): "))? else {
        return Ok(None);
    };
    if answer.is_empty() {
        return Ok(None);
    }
    let hz: f64 = answer
        .parse()
        .map_err(|_| anyhow::anyhow!("{answer:?} is not a number"))?;
    let rate = RateHz::new(hz).map_err(|e| anyhow::anyhow!("rate: {e}"))?;
    if !confirmed(&format!("Set the inference rate to {} Hz?", rate.hz()))? {
        return Ok(None);
    }
    Ok(Some(rate))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn status() -> Value {
        json!({
            "desired": {"model_size": "n", "rate_hz": 5.0},
            "models_on_disk": {"n": [640, 320], "m": [640]},
            "measured": {
                "inference_ms": {"n": {"640": 51.0, "320": 12.4}},
                "capture_switch_gap_ms": 350.0,
                "steady_interval_ms": 200.0
            }
        })
    }

    #[test]
    fn sizes_on_disk_with_their_measured_times() {
        let c = model_choices(&status());
        assert_eq!(
            c.iter().map(|c| c.size).collect::<Vec<_>>(),
            [ModelSize::N, ModelSize::M]
        );
        assert!(c[0].line.contains("640+320") && c[0].line.contains("640: 51 ms, 320: 12 ms"));
        assert!(c[0].line.ends_with("← now"), "{}", c[0].line);
        assert!(
            c[1].line.contains("not measured on this box yet"),
            "{}",
            c[1].line
        );
        assert!(model_choices(&json!({})).is_empty());
    }

    #[test]
    fn the_rate_summary_names_the_last_interruption() {
        let s = rate_summary(&status());
        assert!(s.contains("now 5 Hz"), "{s}");
        assert!(
            s.contains("results paused 350 ms (steady interval 200 ms)"),
            "{s}"
        );
        assert!(s.contains("above 19.6 Hz frames are skipped"), "{s}");
        let fresh = rate_summary(&json!({"desired": {"rate_hz": 2.0}}));
        assert!(fresh.contains("No capture switch measured"), "{fresh}");
    }
}

//! `orionctl model` and `orionctl rate` without an argument, on a terminal: the choices with
//! what this box measured (`get_status`: the sizes in the model directory, their inference
//! times, the gap in results at the last capture switch), a confirmation, then the change
//! and its ack, as with an argument. The texts are built by pure functions of the status
//! (tested below); only `ask` touches the terminal.

use std::io::{BufRead, Write};

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use orion_protocol::status::Measured;
use orion_protocol::{ModelSize, RateHz, Status};

/// One size on disk, with what was measured of it.
#[derive(Debug, PartialEq)]
pub struct SizeChoice {
    pub size: ModelSize,
    pub line: String,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// The sizes present on disk (`on_disk`: size letter → input sizes), each with its inputs
/// and measured inference times.
pub fn model_choices(
    current: ModelSize,
    measured: &Measured,
    on_disk: &BTreeMap<String, Vec<u32>>,
) -> Vec<SizeChoice> {
    ModelSize::ALL
        .into_iter()
        .filter_map(|size| {
            let letter = size.to_string();
            let inputs = on_disk.get(&letter)?;
            let times_of = measured.inference_ms.get(&letter);
            let times: Vec<String> = inputs
                .iter()
                .filter_map(|i| {
                    finite(times_of.and_then(|t| t.get(i)).copied())
                        .map(|t| format!("{i}: {t:.0} ms"))
                })
                .collect();
            let inputs_text = inputs
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+");
            let times = if times.is_empty() {
                "not measured on this box yet".to_string()
            } else {
                format!("inference {}", times.join(", "))
            };
            let mark = if size == current { "   ← now" } else { "" };
            Some(SizeChoice {
                size,
                line: format!("  {letter}  input {inputs_text:<8} {times}{mark}"),
            })
        })
        .collect()
}

/// What the operator reads before choosing a rate (the current rate and model size, what
/// this box measured).
pub fn rate_summary(now: RateHz, size: ModelSize, m: &Measured) -> String {
    let now = now.hz();
    let mut lines = vec![format!(
        "Inference rate now {now} Hz (allowed {}..={} Hz). A change restarts only the capture.",
        RateHz::MIN,
        RateHz::MAX
    )];
    lines.push(match finite(m.capture_switch_gap_ms) {
        Some(gap) => match finite(m.steady_interval_ms) {
            Some(steady) => format!(
                "Last capture switch measured here: results paused {gap:.0} ms (steady interval {steady:.0} ms)."
            ),
            None => format!("Last capture switch measured here: results paused {gap:.0} ms."),
        },
        None => "No capture switch measured on this box yet.".to_string(),
    });
    let slowest = m
        .inference_ms
        .get(&size.to_string())
        .and_then(|t| t.values().filter_map(|v| finite(Some(*v))).reduce(f64::max));
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
pub fn choose_model(status: &Status) -> Result<Option<ModelSize>> {
    let current = status.desired.model_size;
    let on_disk = status.models_on_disk.clone().unwrap_or_default();
    let choices = model_choices(current, &status.measured, &on_disk);
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
    let Some(answer) = ask(&format!(
        "Size [{}] (Enter: keep {current}): ",
        letters.join("/")
    ))?
    else {
        return Ok(None);
    };
    if answer.is_empty() || answer == current.to_string() {
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
pub fn choose_rate(status: &Status) -> Result<Option<RateHz>> {
    let desired = &status.desired;
    println!(
        "{}",
        rate_summary(desired.rate_hz, desired.model_size, &status.measured)
    );
    let now = desired.rate_hz.hz();
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

    use super::*;

    fn measured() -> Measured {
        Measured {
            inference_ms: BTreeMap::from([(
                "n".to_string(),
                BTreeMap::from([(640, 51.0), (320, 12.4)]),
            )]),
            capture_switch_gap_ms: Some(350.0),
            steady_interval_ms: Some(200.0),
        }
    }

    fn on_disk() -> BTreeMap<String, Vec<u32>> {
        BTreeMap::from([
            ("n".to_string(), vec![640, 320]),
            ("m".to_string(), vec![640]),
        ])
    }

    #[test]
    fn sizes_on_disk_with_their_measured_times() {
        let c = model_choices(ModelSize::N, &measured(), &on_disk());
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
        assert!(model_choices(ModelSize::N, &measured(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_rate_summary_names_the_last_interruption() {
        let five = RateHz::new(5.0).unwrap();
        let s = rate_summary(five, ModelSize::N, &measured());
        assert!(s.contains("now 5 Hz"), "{s}");
        assert!(
            s.contains("results paused 350 ms (steady interval 200 ms)"),
            "{s}"
        );
        assert!(s.contains("above 19.6 Hz frames are skipped"), "{s}");
        let fresh = rate_summary(
            RateHz::new(2.0).unwrap(),
            ModelSize::N,
            &Measured::default(),
        );
        assert!(fresh.contains("No capture switch measured"), "{fresh}");
    }
}

//! The control suite: a real oriond with its children (detection running on a test pattern
//! and synthetic models) and orion-control on a local mosquitto.
//!
//! - `control.ack_p99_ms`: publish of a `set_attention_rois` command (a different ROI each
//!   time, so every one changes the detector) → receipt of its ack on the health topic,
//!   p99 over `commands` commands sent one after another (QoS 0, every 20 ms); the median
//!   of three rounds' p99s. The baseline is the broker's own
//!   round trip measured the same way: publish to a topic this client subscribes to.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use orion_tests::mqtt::Mosquitto;
use orion_tests::oriond::Oriond;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

use crate::report;
use crate::stats::{median, percentile};

#[derive(clap::Args)]
pub struct Options {
    /// Commands for the ack percentile.
    #[arg(long, default_value_t = 200)]
    commands: usize,
}

/// The headline runs Orion's default config against mosquitto as Debian ships it; the same
/// measurement with acks and status at QoS 1 follows as `control.ack_p99_ms.acks_qos1`, to
/// show what that choice costs (ADR 0004).
pub fn run(opts: &Options) -> Result<()> {
    crate::supervisor::build_binaries(true)?;
    measure(opts, "", "control.ack_p99_ms", 3)?;
    measure(
        opts,
        "[mqtt.qos]\nacks = 1\nstatus = 1\n",
        "control.ack_p99_ms.acks_qos1",
        1,
    )
}

/// `rounds` rounds of `opts.commands`; the line's value is the median of the rounds' p99s
/// (a 2-core machine's scheduling noise moves a single p99 of 200 a lot).
fn measure(opts: &Options, extra: &str, name: &str, rounds: usize) -> Result<()> {
    let broker = Mosquitto::start()?;
    // Detection at 15 Hz all through the run.
    let (instance, dir) = Oriond::scratch()?;
    let text = Oriond::config_text(&instance, &dir, Some(broker.port), extra)?
        .replace("rate_hz = 5", "rate_hz = 15");
    let o = Oriond::start_with(instance, dir, &text)?;
    o.wait_all_running(orion_tests::oriond::START_TIMEOUT)?;
    let (client, messages) = connect(broker.port)?;
    let health = format!("care/health/{}", o.instance);
    let control = format!("care/control/{}", o.instance);
    client.subscribe(&health, QoS::AtLeastOnce)?;
    client.subscribe("bench/echo", QoS::AtLeastOnce)?;
    std::thread::sleep(Duration::from_millis(300));
    let baseline = round_trips(&client, &messages, opts.commands.min(100), |i| {
        (
            "bench/echo".to_string(),
            format!("{{\"i\":{i}}}"),
            format!("{{\"i\":{i}}}"),
        )
    })?;
    let results_before = o.status()?["detector"]["results"].as_u64().unwrap_or(0);
    let mut p99s = Vec::with_capacity(rounds);
    let mut all = Vec::new();
    for round in 0..rounds {
        let acks = round_trips(&client, &messages, opts.commands, |i| {
            let x = 0.01 * (i % 50) as f64;
            let body = json!({
                "command": "set_attention_rois",
                "params": {"rois": [{"x": x, "y": 0.1, "width": 0.4, "height": 0.5}]},
                "request_id": format!("bench-{round}-{i}"),
            });
            (
                control.clone(),
                body.to_string(),
                format!("bench-{round}-{i}"),
            )
        })?;
        p99s.push(percentile(&acks, 99.0).context("no samples")?);
        all.extend(acks);
    }
    let results_after = o.status()?["detector"]["results"].as_u64().unwrap_or(0);
    report::line(
        name,
        median(&p99s).context("no rounds")?,
        "ms",
        json!({
            "commands_per_round": opts.commands,
            "round_p99s_ms": p99s.iter().map(|v| report::round(*v)).collect::<Vec<_>>(),
            "median_ms": report::round(median(&all).unwrap_or(0.0)),
            "baseline_broker_p99_ms": report::round(percentile(&baseline, 99.0).unwrap_or(0.0)),
            "detections_during_run": results_after.saturating_sub(results_before),
            "config": extra.replace('\n', " "),
            "target_ms": 20,
        }),
    );
    Ok(())
}

type Messages = mpsc::Receiver<(String, Vec<u8>)>;

fn connect(port: u16) -> Result<(Client, Messages)> {
    let mut opts = MqttOptions::new(
        format!("orion-bench-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    // The measuring client must not add Nagle delays of its own.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    let (client, mut connection) = Client::new(opts, 64);
    connection.eventloop.set_network_options(net);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    Ok((client, rx))
}

/// For each `i`: publish `make(i) = (topic, payload, marker)`, wait for a message holding
/// `marker`; milliseconds each.
fn round_trips(
    client: &Client,
    messages: &Messages,
    n: usize,
    make: impl Fn(usize) -> (String, String, String),
) -> Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let (topic, payload, marker) = make(i);
        let t = Instant::now();
        // QoS 0, as `mosquitto_pub` sends by default: a QoS 1 publish makes the broker send a
        // PUBACK just before the answer, and with Nagle on (mosquitto's default) the answer
        // then waits for this client's delayed ACK (~40 ms) — the broker's latency, not Orion's.
        client.publish(topic, QoS::AtMostOnce, false, payload)?;
        loop {
            let left = Duration::from_secs(10).saturating_sub(t.elapsed());
            let (_, body) = messages
                .recv_timeout(left)
                .with_context(|| format!("no answer for {marker}"))?;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let hit =
                v["request_id"] == marker.as_str() || String::from_utf8_lossy(&body) == marker;
            if hit {
                if v["status"] == "error" {
                    bail!("{marker} failed: {v}");
                }
                break;
            }
        }
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        // Paced like an operator's tools, so detection keeps running between commands.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(samples)
}

//! The metrics of a real room: `orionctl metrics` and the node_exporter textfile parse as
//! OpenMetrics (a strict parser, not a grep), carry the latency histogram of real
//! detections and orion-control's MQTT counters, and agree with the status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricFamily, OpenMetricsType, OpenMetricsValue};
use orion_tests::mqtt::Mosquitto;
use orion_tests::oriond::{Oriond, START_TIMEOUT};

type Families = HashMap<String, MetricFamily<OpenMetricsType, OpenMetricsValue>>;

fn parse(text: &str) -> Families {
    match parse_openmetrics(text) {
        Ok(e) => e.families,
        Err(e) => panic!("not OpenMetrics: {e:?}\n{text}"),
    }
}

/// The one sample of a family without labels of its own.
fn value(f: &Families, name: &str) -> f64 {
    let family = f.get(name).unwrap_or_else(|| panic!("no {name}"));
    let sample = family.iter_samples().next().unwrap();
    match &sample.value {
        OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn metrics_parse_as_openmetrics_with_a_latency_histogram_and_the_mqtt_counters() {
    let broker = Mosquitto::start().unwrap();
    let (instance, dir) = Oriond::scratch().unwrap();
    let textfile = dir.join("orion.prom");
    let extra = format!(
        "[metrics]\ntextfile = \"{}\"\ninterval_s = 1\n",
        textfile.display()
    );
    let text = Oriond::config_text(&instance, &dir, Some(broker.port), &extra).unwrap();
    let o = Oriond::start_with(instance.clone(), dir, &text).unwrap();
    o.wait_working(START_TIMEOUT).unwrap();
    o.wait_for("ten results and the MQTT counters", START_TIMEOUT, |s| {
        s["detector"]["results"].as_u64().is_some_and(|n| n >= 10) && s["mqtt"]["connected"] == true
    })
    .unwrap();

    let (code, out, err) = o.ctl(&["metrics"]).unwrap();
    assert_eq!(code, 0, "{err}");
    let f = parse(&out);
    let latency = &f["orion_detector_result_latency_seconds"];
    assert_eq!(latency.family_type, OpenMetricsType::Histogram);
    let sample = latency.iter_samples().next().unwrap();
    let labels = sample.get_labelset().unwrap();
    assert_eq!(
        labels.get_label_value("instance_id"),
        Some(instance.as_str())
    );
    let OpenMetricsValue::Histogram(h) = &sample.value else {
        panic!("{:?}", sample.value)
    };
    let count = h.count.unwrap();
    let results = value(&f, "orion_detector_results");
    assert!(
        count >= 10 && count as f64 <= results,
        "{count} of {results}"
    );
    let inf = h.buckets.last().unwrap();
    assert!(inf.upper_bound.is_infinite());
    assert_eq!(inf.count.as_f64(), count as f64);
    let mean = h.sum.as_ref().unwrap().as_f64() / count as f64;
    assert!(mean > 0.0 && mean < 5.0, "mean latency {mean} s");

    assert_eq!(value(&f, "orion_stream_running"), 1.0);
    assert_eq!(value(&f, "orion_mqtt_connected"), 1.0);
    assert!(value(&f, "orion_mqtt_connects") >= 1.0);
    assert!(value(&f, "orion_mqtt_detections_published") >= 1.0);
    let running = &f["orion_process_running"];
    let processes: Vec<String> = running
        .iter_samples()
        .map(|s| {
            s.get_labelset()
                .unwrap()
                .get_label_value("process")
                .unwrap()
                .to_string()
        })
        .collect();
    for p in ["control", "detector", "capture"] {
        assert!(processes.iter().any(|n| n == p), "{processes:?}");
    }

    // The textfile: the same metrics, readable by node_exporter's user, rewritten.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !textfile.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mode = std::fs::metadata(&textfile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let first = parse(&std::fs::read_to_string(&textfile).unwrap());
    let before = value(&first, "orion_detector_results");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = parse(&std::fs::read_to_string(&textfile).unwrap());
        if value(&now, "orion_detector_results") > before {
            break;
        }
        assert!(Instant::now() < deadline, "the textfile is not rewritten");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(o);
    drop(broker);
}

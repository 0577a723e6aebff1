//! The room's counters as OpenMetrics text (`orionctl metrics`, and the node_exporter
//! textfile oriond writes with `[metrics] textfile`): the processes, the stream, the
//! detector with its capture → result latency histogram, occupancy, snapshots, refused
//! requests and orion-control's MQTT counters. Made from one [`Status`], so the two outputs
//! cannot disagree; no listening socket is opened for them.

use std::borrow::Cow;

use orion_protocol::status::{MqttCounters, Status};
use orion_protocol::{ProcessState, StreamState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// `status` in the OpenMetrics text format, every series labelled with the instance id.
pub fn render(status: &Status) -> String {
    let labels = [(
        Cow::Borrowed("instance_id"),
        Cow::Owned(status.instance_id.to_string()),
    )];
    let mut registry = Registry::with_prefix_and_labels("orion", labels.into_iter());
    registry.register_collector(Box::new(Snapshot(status.clone())));
    let mut text = String::new();
    // Writing into a String cannot fail; an error here would be a bug in the encoder.
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        text = "# EOF\n".into();
    }
    text
}

#[derive(Debug)]
struct Snapshot(Status);

/// One gauge or counter with no labels of its own.
enum Value {
    Gauge(f64),
    Counter(u64),
}

fn one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Value,
) -> Result<(), std::fmt::Error> {
    match value {
        Value::Gauge(v) => encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&v),
        Value::Counter(v) => encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None),
    }
}

fn flag(b: bool) -> Value {
    Value::Gauge(if b { 1.0 } else { 0.0 })
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        self.processes(&mut e)?;
        let stream = s.stream.as_ref();
        let running = stream.is_some_and(|c| c.state == StreamState::Running);
        one(
            &mut e,
            "stream_running",
            "1 while the camera stream delivers frames",
            flag(running),
        )?;
        one(
            &mut e,
            "stream_fps",
            "Frames per second written to the ring",
            Value::Gauge(stream.map_or(0.0, |c| c.fps)),
        )?;
        one(
            &mut e,
            "stream_reconnects",
            "Pipelines torn down and rebuilt by the running capture",
            Value::Counter(stream.map_or(0, |c| c.reconnects)),
        )?;
        self.detector(&mut e)?;
        let occupancy = &s.occupancy;
        one(
            &mut e,
            "occupancy_known",
            "1 when occupancy is known (not paused, the camera up, a recent whole-frame look)",
            flag(occupancy.occupied.is_some()),
        )?;
        one(
            &mut e,
            "occupied",
            "1 when someone is in the room; 0 when nobody is or it is not known",
            flag(occupancy.occupied == Some(true)),
        )?;
        one(
            &mut e,
            "persons",
            "People in the room now",
            Value::Gauge(f64::from(occupancy.count)),
        )?;
        one(
            &mut e,
            "paused",
            "1 while inference is paused",
            flag(s.desired.paused),
        )?;
        one(
            &mut e,
            "rate_hz",
            "The desired inference rate",
            Value::Gauge(s.desired.rate_hz.hz()),
        )?;
        one(
            &mut e,
            "snapshots_taken",
            "Snapshots made",
            Value::Counter(s.snapshots.taken),
        )?;
        one(
            &mut e,
            "snapshots_failed",
            "Snapshots that failed",
            Value::Counter(s.snapshots.failed),
        )?;
        one(
            &mut e,
            "requests_refused",
            "Requests refused because their connection may not send them",
            Value::Counter(s.oriond.authority.refused_total),
        )?;
        one(
            &mut e,
            "commands_repeated_not_applied",
            "Commands seen again (redelivered) and not applied twice",
            Value::Counter(s.oriond.commands_repeated_not_applied),
        )?;
        if let Some(mqtt) = &s.mqtt {
            mqtt_counters(&mut e, mqtt)?;
        }
        Ok(())
    }
}

impl Snapshot {
    fn processes(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ps = &self.0.processes;
        let mut m = e.encode_descriptor(
            "process_running",
            "1 while the process is RUNNING",
            None,
            MetricType::Gauge,
        )?;
        for p in ps {
            let running = if p.state == ProcessState::Running {
                1.0
            } else {
                0.0
            };
            m.encode_family(&[("process", p.name.as_str())])?
                .encode_gauge(&running)?;
        }
        let mut m = e.encode_descriptor(
            "process_restarts",
            "Times oriond started the process again after it ended",
            None,
            MetricType::Counter,
        )?;
        for p in ps {
            m.encode_family(&[("process", p.name.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&u64::from(p.restarts), None)?;
        }
        Ok(())
    }

    fn detector(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(d) = &self.0.detector else {
            return Ok(());
        };
        one(
            e,
            "detector_results",
            "Frames inferred by the serving detector",
            Value::Counter(d.results),
        )?;
        one(
            e,
            "detector_inference_fps",
            "Results per second",
            Value::Gauge(d.inference_fps),
        )?;
        one(
            e,
            "detector_frames_skipped",
            "Frames never inferred because a newer one was taken",
            Value::Counter(d.frames_skipped),
        )?;
        one(
            e,
            "detector_frames_torn",
            "Frame reads overwritten meanwhile",
            Value::Counter(d.frames_torn),
        )?;
        one(
            e,
            "detector_worker_errors",
            "Errors from the Python worker",
            Value::Counter(d.worker_errors),
        )?;
        one(
            e,
            "detector_worker_restarts",
            "Python workers started again",
            Value::Counter(d.worker_restarts),
        )?;
        one(
            e,
            "detector_dropped_in_flight",
            "Frames lost with a worker that died inferring them",
            Value::Counter(d.dropped_in_flight),
        )?;
        let h = &d.result_latency;
        // Per bucket, as the encoder wants them (it adds them up into `le` buckets).
        let buckets: Vec<(f64, u64)> = h
            .per_bucket()
            .into_iter()
            .map(|(le_ms, n)| (le_ms / 1000.0, n))
            .collect();
        // The unit is in the name only: a `# UNIT` line on a histogram trips some
        // OpenMetrics parsers, while the suffix is what Prometheus users look for.
        e.encode_descriptor(
            "detector_result_latency_seconds",
            "Capture to detection result",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(h.sum_ms / 1000.0, h.count(), &buckets, None)
    }
}

fn mqtt_counters(e: &mut DescriptorEncoder, m: &MqttCounters) -> Result<(), std::fmt::Error> {
    one(
        e,
        "mqtt_connected",
        "1 while orion-control is connected to the broker",
        flag(m.connected),
    )?;
    let counters: [(&str, &str, u64); 16] = [
        (
            "mqtt_connects",
            "Connections made to the broker",
            m.connects,
        ),
        (
            "mqtt_failovers",
            "Moves to another broker node",
            m.failovers,
        ),
        (
            "mqtt_session_takeovers",
            "Times another client with this room's client id took its session",
            m.session_takeovers,
        ),
        ("mqtt_commands", "Commands received", m.commands),
        (
            "mqtt_commands_rejected",
            "Commands refused as malformed or invalid",
            m.commands_rejected,
        ),
        (
            "mqtt_commands_expired",
            "Commands older than command_max_age_s",
            m.commands_expired,
        ),
        (
            "mqtt_commands_refused",
            "Commands not in allowed_commands",
            m.commands_refused,
        ),
        (
            "mqtt_commands_retained",
            "Retained commands refused",
            m.commands_retained,
        ),
        (
            "mqtt_commands_timed_out",
            "Commands oriond did not answer in time",
            m.commands_timed_out,
        ),
        (
            "mqtt_commands_redelivered",
            "Commands the broker delivered again",
            m.commands_redelivered,
        ),
        (
            "mqtt_detections_published",
            "Detection messages published",
            m.detections_published,
        ),
        (
            "mqtt_detections_dropped",
            "Detection messages dropped (outbox full)",
            m.detections_dropped,
        ),
        ("mqtt_acks_dropped", "Acks dropped", m.acks_dropped),
        (
            "mqtt_events_published",
            "Care events published",
            m.events_published,
        ),
        (
            "mqtt_events_dropped",
            "Care events dropped",
            m.events_dropped,
        ),
        (
            "mqtt_snapshots_dropped",
            "Snapshots not published",
            m.snapshots_dropped,
        ),
    ];
    for (name, help, v) in counters {
        one(e, name, help, Value::Counter(v))?;
    }
    one(
        e,
        "mqtt_commands_in_flight",
        "Commands sent to oriond and not answered yet",
        Value::Gauge(m.commands_in_flight as f64),
    )
}

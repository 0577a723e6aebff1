//! End to end, observed as an operator's backend observes Orion: an MQTT client subscribed
//! to `care/#` at QoS 1, a stock mosquitto, the RTSP server looping the street footage, the
//! real YOLOv3-tiny model (and the real fall model as the "m" size).
//!
//! - model size: `a_model_swap_keeps_detections_flowing_and_no_pid_changes`
//! - rate: `rate_changes_restart_only_the_capture`,
//!   `a_rate_change_is_make_before_break_and_applies_with_the_camera_down_too`
//! - ROIs, pause/resume, auto-focus: `settings_apply_to_the_next_processed_frame`
//! - commands while something restarts: `commands_during_a_model_load_or_a_capture_restart_are_answered`
//! - persistence: `a_command_in_flight_when_control_dies_is_answered_once_by_its_successor`,
//!   `an_expired_command_is_refused_and_changes_nothing`
//!
//! What an operator looks at (occupancy, snapshots) is in `room.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::operator::{Arrival, Operator};
use orion_tests::system::{Spec, System};
use serde_json::{Value, json};

const ACK: Duration = Duration::from_secs(60);

fn capture_time(d: &Value) -> SystemTime {
    humantime::parse_rfc3339_weak(d["capture_ts"].as_str().unwrap()).unwrap()
}

fn detection(op: &Operator, i: usize) -> Value {
    op.seen[i].json().unwrap()
}

/// Pids of every managed process and of the Python worker.
fn pids(sys: &System) -> Vec<(String, u64)> {
    let s = sys.o.status().unwrap();
    let mut v: Vec<(String, u64)> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.push((
        "worker".into(),
        s["detector"]["worker_pid"].as_u64().unwrap_or(0),
    ));
    v
}

fn ok(op: &mut Operator, command: &str, params: Value) -> (Value, Instant) {
    let (rid, _) = op.send(command, params).unwrap();
    let (ack, at) = op.ack(&rid, ACK).unwrap();
    assert_eq!(ack["status"], "success", "{command}: {ack}");
    (ack, at)
}

/// The largest gap between consecutive detection arrivals in `indices`.
fn largest_gap(op: &Operator, indices: &[usize]) -> Duration {
    indices
        .windows(2)
        .map(|w| op.seen[w[1]].at.duration_since(op.seen[w[0]].at))
        .max()
        .unwrap_or_default()
}

#[test]
fn a_model_swap_keeps_detections_flowing_and_no_pid_changes() {
    // The real YOLOv3-tiny as "n" and again as "s": both sides cost the same, so a gap in
    // the results is a pause of the swap, not a slower model's longer latency. (The heavy
    // fall model's swap under load is measured by `orion-bench system`.)
    let dir = std::env::temp_dir().join(format!("orion-e2e-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let real = orion_tests::fixtures::fixture("models/real").unwrap();
    for (from, to) in [
        (
            "yolo11n_yolov3-tiny_640.onnx",
            "yolo11n_yolov3-tiny_640.onnx",
        ),
        (
            "yolo11n_yolov3-tiny_320.onnx",
            "yolo11n_yolov3-tiny_320.onnx",
        ),
        (
            "yolo11n_yolov3-tiny_640.onnx",
            "yolo11s_yolov3-tiny_640.onnx",
        ),
        (
            "yolo11n_yolov3-tiny_320.onnx",
            "yolo11s_yolov3-tiny_320.onnx",
        ),
    ] {
        std::fs::copy(real.join(from), dir.join(to)).unwrap();
    }
    let sys = System::start(Spec {
        models: Some(dir.clone()),
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    // As on a box that has run a while: the warm spare is loaded, and loads the new model.
    let spare =
        sys.o.wait_spare_ready(Duration::from_secs(60)).unwrap()["detector"]["spare_worker_pid"]
            .as_u64()
            .unwrap();
    let before = pids(&sys);
    let start = op.seen.len();
    op.wait_detections(start, 10, Duration::from_secs(30))
        .unwrap();
    let steady = {
        let d = op.detections_from(start);
        op.seen[d[d.len() - 1]].at.duration_since(op.seen[d[0]].at) / (d.len() as u32 - 1)
    };
    let (ack, ack_at) = ok(&mut op, "set_model_size", json!({"size": "s"}));
    assert_eq!(ack["data"]["size"], "s", "{ack}");
    let after_ack = op.seen.len();
    op.wait_detections(after_ack, 10, Duration::from_secs(30))
        .unwrap();
    let all = op.detections_from(start);
    let gap = largest_gap(&op, &all);
    let limit = Duration::from_millis(200) + steady;
    assert!(
        gap < limit,
        "largest gap {gap:?} over the swap (limit {limit:?}, steady {steady:?})"
    );
    // Results after the ack come from the new model, and no process was replaced.
    let later: Vec<usize> = op
        .detections_from(after_ack)
        .into_iter()
        .filter(|&i| op.seen[i].at > ack_at + steady * 3)
        .collect();
    assert!(!later.is_empty());
    for i in later {
        assert_eq!(detection(&op, i)["data"]["metadata"]["model_size"], "s");
    }
    // No process was restarted; the worker serving frames is the spare that loaded "s".
    assert_eq!(ack["data"]["loaded_by"], "spare", "{ack}");
    let after: Vec<(String, u64)> = pids(&sys);
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        if name == "worker" {
            assert_eq!(*new, spare, "the spare became the worker");
        } else {
            assert_eq!(old, new, "{name} must not restart for a model change");
        }
    }
    drop(sys);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rate_changes_restart_only_the_capture() {
    let sys = System::start(Spec {
        rate_hz: 1.0,
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    let mut before = pids(&sys);
    for (rate, frames) in [(1.0, 3), (5.0, 10), (0.5, 3)] {
        if rate != 1.0 {
            let (ack, _) = ok(&mut op, "set_inference_rate", json!({"rate_hz": rate}));
            assert_eq!(ack["data"]["rate_hz"], rate, "{ack}");
        }
        let from = op.seen.len();
        // One more than counted: the first may be a frame of the old capture in flight.
        op.wait_detections(from, frames + 1, Duration::from_secs(40))
            .unwrap();
        let d = op.detections_from(from);
        let times: Vec<SystemTime> = d[1..]
            .iter()
            .map(|&i| capture_time(&detection(&op, i)))
            .collect();
        let span = times[times.len() - 1].duration_since(times[0]).unwrap();
        let measured = (times.len() - 1) as f64 / span.as_secs_f64();
        assert!(
            (measured - rate).abs() / rate < 0.2,
            "asked {rate} Hz, detections at {measured:.2} Hz"
        );
        let now = pids(&sys);
        for ((name, old), (_, new)) in before.iter().zip(&now) {
            if name == "capture" && rate != 1.0 {
                assert_ne!(old, new, "capture must restart for a new rate");
            } else {
                assert_eq!(old, new, "{name} must not restart for a new rate");
            }
        }
        before = now;
    }
}

/// The first detection captured after `after` and every later one satisfy `check`; the
/// first such one arrives soon (within a few frames).
fn applied_from(op: &mut Operator, after: SystemTime, what: &str, check: impl Fn(&Value) -> bool) {
    let from = op.seen.len().saturating_sub(50);
    let topic = op.detection_topic();
    let i = op
        .wait_from(what, from, Duration::from_secs(10), |a: &Arrival| {
            a.topic == topic && a.json().is_some_and(|d| capture_time(&d) > after)
        })
        .unwrap();
    let first = detection(op, i);
    assert!(check(&first), "{what}: the next frame is {first}");
    op.wait_detections(i + 1, 3, Duration::from_secs(10))
        .unwrap();
    for j in op.detections_from(i) {
        let d = detection(op, j);
        assert!(check(&d), "{what}: a later frame is {d}");
    }
}

#[test]
fn settings_apply_to_the_next_processed_frame() {
    let sys = System::start(Spec::default()).unwrap();
    let mut op = sys.operator().unwrap();
    op.wait_detections(0, 3, Duration::from_secs(30)).unwrap();

    let roi = json!({"x": 0.25, "y": 0.28, "width": 0.45, "height": 0.32});
    ok(&mut op, "set_attention_rois", json!({"rois": [roi]}));
    let t = SystemTime::now();
    applied_from(&mut op, t, "ROIs applied", |d| {
        let m = &d["data"]["metadata"];
        m["roi_source"] == "external" && (m["region"]["x"].as_f64().unwrap() - 0.25).abs() < 1e-6
    });

    ok(&mut op, "clear_attention_rois", json!({}));
    let t = SystemTime::now();
    applied_from(&mut op, t, "ROIs cleared", |d| {
        d["data"]["metadata"]["roi_source"] == "full"
    });

    ok(
        &mut op,
        "set_auto_focus_strategy",
        json!({"strategy": "simple"}),
    );
    ok(&mut op, "enable_auto_focus", json!({}));
    let t = SystemTime::now();
    // The frame after the command is still full (auto-focus follows what it saw), then it
    // narrows onto the people: every later frame is auto_focus or full, never external.
    applied_from(&mut op, t, "auto-focus on", |d| {
        matches!(
            d["data"]["metadata"]["roi_source"].as_str(),
            Some("auto_focus" | "full")
        )
    });
    let from = op.seen.len();
    let topic = op.detection_topic();
    op.wait_from("an auto-focus region", from, Duration::from_secs(10), |a| {
        a.topic == topic
            && a.json()
                .is_some_and(|d| d["data"]["metadata"]["roi_source"] == "auto_focus")
    })
    .unwrap();
    ok(&mut op, "disable_auto_focus", json!({}));

    ok(&mut op, "pause_inference", json!({}));
    let paused_at = SystemTime::now();
    std::thread::sleep(Duration::from_secs(2));
    op.pull(Duration::from_millis(10));
    let topic = op.detection_topic();
    let late: Vec<Value> = op
        .seen
        .iter()
        .filter(|a| a.topic == topic)
        .filter_map(Arrival::json)
        .filter(|d| capture_time(d) > paused_at)
        .collect();
    assert!(late.is_empty(), "frames inferred while paused: {late:?}");
    let (_, resumed) = ok(&mut op, "resume_inference", json!({}));
    let from = op.seen.len();
    op.wait_detections(from, 1, Duration::from_secs(5)).unwrap();
    let first = op.detections_from(from)[0];
    assert!(
        op.seen[first].at.duration_since(resumed) < Duration::from_secs(1),
        "detections resumed {:?} after the ack",
        op.seen[first].at.duration_since(resumed)
    );
}

#[test]
fn commands_during_a_model_load_or_a_capture_restart_are_answered() {
    let sys = System::start(Spec::default()).unwrap();
    let mut op = sys.operator().unwrap();
    op.wait_detections(0, 3, Duration::from_secs(30)).unwrap();
    let roi = json!({"rois": [{"x": 0.1, "y": 0.1, "width": 0.5, "height": 0.5}]});
    for (trigger, params) in [
        ("set_model_size", json!({"size": "m"})),
        ("set_inference_rate", json!({"rate_hz": 4})),
    ] {
        let (first, _) = op.send(trigger, params).unwrap();
        // Sent at once, while the model loads or the capture restarts.
        let others = [
            op.send("set_attention_rois", roi.clone()).unwrap().0,
            op.send("get_status", json!({})).unwrap().0,
            op.send("clear_attention_rois", json!({})).unwrap().0,
            op.send("pause_inference", json!({})).unwrap().0,
            op.send("resume_inference", json!({})).unwrap().0,
        ];
        for rid in std::iter::once(&first).chain(&others) {
            let (ack, _) = op.ack(rid, ACK).unwrap();
            assert_eq!(ack["status"], "success", "{rid}: {ack}");
        }
        // Exactly one ack each.
        let health = op.topic("health");
        for rid in std::iter::once(&first).chain(&others) {
            let n = op
                .seen
                .iter()
                .filter(|a| {
                    a.topic == health && a.json().is_some_and(|v| v["request_id"] == rid.as_str())
                })
                .count();
            assert_eq!(n, 1, "{rid} acked {n} times");
        }
    }
    let desired = sys.o.status().unwrap()["desired"].clone();
    assert_eq!(desired["model_size"], "m");
    assert_eq!(desired["rate_hz"], 4.0);
    assert_eq!(desired["paused"], false);
    assert!(desired["rois"].is_null(), "{desired}");
    let from = op.seen.len();
    op.wait_detections(from, 3, Duration::from_secs(20))
        .unwrap();
}

#[test]
fn a_command_in_flight_when_control_dies_is_answered_once_by_its_successor() {
    let sys = System::start(Spec::default()).unwrap();
    let mut op = sys.operator().unwrap();
    op.wait_detections(0, 2, Duration::from_secs(30)).unwrap();
    let health = op.topic("health");
    for round in 0..5 {
        // Up longer than startsecs: this kill is a crash, not a failed start.
        sys.o.wait_up("control", 0.6, ACK).unwrap();
        let control = sys.o.child_pid("control").unwrap();
        // A command the broker is delivering while control dies, and some sent while it
        // is away: the persistent session keeps them, the successor answers them.
        let rois =
            json!({"rois": [{"x": 0.1 * f64::from(round), "y": 0.0, "width": 0.5, "height": 0.5}]});
        let (rid, _) = op.send("set_attention_rois", rois).unwrap();
        kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
        let away: Vec<String> = (0..3)
            .map(|_| op.send("get_status", json!({})).unwrap().0)
            .collect();
        for id in std::iter::once(&rid).chain(&away) {
            let (ack, _) = op.ack(id, ACK).unwrap();
            assert_eq!(ack["status"], "success", "{ack}");
        }
        // Acks go out in order: once a later marker is answered, a duplicate would be here.
        let (marker, _) = op.send("get_status", json!({})).unwrap();
        op.ack(&marker, ACK).unwrap();
        for id in std::iter::once(&rid).chain(&away) {
            let n = op
                .seen
                .iter()
                .filter(|a| {
                    a.topic == health && a.json().is_some_and(|v| v["request_id"] == id.as_str())
                })
                .count();
            assert_eq!(n, 1, "round {round}: {id} acked {n} times");
        }
        let x = sys.o.status().unwrap()["desired"]["rois"][0]["x"]
            .as_f64()
            .unwrap();
        assert!((x - 0.1 * f64::from(round)).abs() < 1e-9);
    }
}

#[test]
fn an_expired_command_is_refused_and_changes_nothing() {
    let sys = System::start(Spec::default()).unwrap();
    let mut op = sys.operator().unwrap();
    let old = humantime::format_rfc3339(SystemTime::now() - Duration::from_secs(600)).to_string();
    let body = json!({"command": "pause_inference", "request_id": "old-1", "timestamp": old});
    op.send_raw(body.to_string().into_bytes()).unwrap();
    let (ack, _) = op.ack("old-1", ACK).unwrap();
    assert_eq!(ack["status"], "error");
    assert!(
        ack["error"].as_str().unwrap().starts_with("expired"),
        "{ack}"
    );
    assert_eq!(sys.o.status().unwrap()["desired"]["paused"], false);
    // Stamped an hour ahead: it would stay young past the age limit, after oriond forgot
    // it was applied; refused, naming the clocks.
    let ahead =
        humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(3600)).to_string();
    let body = json!({"command": "pause_inference", "request_id": "ahead-1", "timestamp": ahead});
    op.send_raw(body.to_string().into_bytes()).unwrap();
    let (ack, _) = op.ack("ahead-1", ACK).unwrap();
    assert_eq!(ack["status"], "error");
    assert_eq!(ack["error_kind"], "bad_request", "{ack}");
    assert!(
        ack["error"]
            .as_str()
            .unwrap()
            .contains("ahead of this device's clock"),
        "{ack}"
    );
    assert_eq!(sys.o.status().unwrap()["desired"]["paused"], false);
    // A fresh timestamp is fine.
    let now = humantime::format_rfc3339(SystemTime::now()).to_string();
    let body = json!({"command": "pause_inference", "request_id": "new-1", "timestamp": now});
    op.send_raw(body.to_string().into_bytes()).unwrap();
    let (ack, _) = op.ack("new-1", ACK).unwrap();
    assert_eq!(ack["status"], "success", "{ack}");
    assert_eq!(sys.o.status().unwrap()["desired"]["paused"], true);
}

#[test]
fn detections_resume_when_the_camera_returns_not_when_the_backoff_ends() {
    let mut sys = System::start(Spec::default()).unwrap();
    let mut op = sys.operator().unwrap();
    op.wait_detections(0, 3, Duration::from_secs(60)).unwrap();
    // The camera away for 20 s: the capture's backoff grows past 8 s meanwhile.
    let capture = sys.o.child_pid("capture").unwrap();
    sys.camera.kill().unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let waiting = sys.o.status().unwrap()["stream"].clone();
    assert_eq!(waiting["state"], "reconnecting", "{waiting}");
    sys.camera.resume().unwrap();
    let (back, t) = (SystemTime::now(), Instant::now());
    let mark = op.seen.len();
    let i = op
        .wait_fresh_detection(mark, back, Duration::from_secs(60))
        .unwrap();
    let took = op.seen[i].at.duration_since(t);
    eprintln!("camera back → detection after {took:?} (status while away: {waiting})");
    // Generous, yet well under the 8–16 s the backoff would have waited.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        sys.o.child_pid("capture").unwrap(),
        capture,
        "no process restarted"
    );
}

/// A rate change replaces the capture make-before-break: the successor holds a frame before
/// the old capture stops, one new writer claims the ring (the epoch moves by one), the
/// frames stay in order and the gap stays near one frame interval. With the camera down
/// the change still applies (the ordinary restart, the ack says why) and detections come
/// back when the camera does.
#[test]
fn a_rate_change_is_make_before_break_and_applies_with_the_camera_down_too() {
    let mut sys = System::start(Spec::default()).unwrap();
    let mut op = sys.operator().unwrap();
    op.wait_detections(0, 5, Duration::from_secs(60)).unwrap();
    let epoch = sys.o.status().unwrap()["stream"]["epoch"].as_u64().unwrap();
    let capture = sys.o.child_pid("capture").unwrap();
    let from = op.seen.len();
    let (ack, _) = ok(&mut op, "set_inference_rate", json!({"rate_hz": 4.0}));
    assert_eq!(
        ack["data"]["handover"]["mode"], "make_before_break",
        "{ack}"
    );
    op.wait_detections(op.seen.len(), 6, Duration::from_secs(30))
        .unwrap();
    assert_ne!(sys.o.child_pid("capture").unwrap(), capture);
    let stream = sys.o.status().unwrap()["stream"].clone();
    assert_eq!(stream["epoch"].as_u64(), Some(epoch + 1), "{stream}");
    assert_eq!(stream["rate_hz"], 4.0, "{stream}");
    // In frame order, capture times only grow: no second writer interleaved.
    let mut frames: Vec<(u64, SystemTime)> = op
        .detections_from(from)
        .into_iter()
        .map(|i| {
            let d = detection(&op, i);
            (d["frame_seq"].as_u64().unwrap(), capture_time(&d))
        })
        .collect();
    frames.sort();
    frames.dedup();
    let gaps: Vec<Duration> = frames
        .windows(2)
        .map(|w| {
            w[1].1
                .duration_since(w[0].1)
                .expect("capture times in frame order")
        })
        .collect();
    let largest = gaps.iter().max().copied().unwrap_or_default();
    eprintln!("rate 5 → 4 Hz make-before-break: largest capture gap {largest:?}; {ack}");
    // One interval is 200–250 ms; generous for a loaded CI box.
    assert!(largest < Duration::from_millis(800), "{gaps:?}");

    // The camera down: the change applies the ordinary way and recovers on its return.
    sys.camera.kill().unwrap();
    sys.o
        .wait_for("the stream down", Duration::from_secs(30), |s| {
            s["stream"]["state"] != "running"
        })
        .unwrap();
    let (ack, _) = ok(&mut op, "set_inference_rate", json!({"rate_hz": 3.0}));
    assert_eq!(ack["data"]["handover"]["mode"], "restart", "{ack}");
    assert!(
        ack["data"]["handover"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("stream")),
        "{ack}"
    );
    sys.camera.resume().unwrap();
    let back = SystemTime::now();
    let mark = op.seen.len();
    op.wait_fresh_detection(mark, back, Duration::from_secs(30))
        .unwrap();
    let status = sys.o.status().unwrap();
    assert_eq!(status["desired"]["rate_hz"], 3.0);
    assert_eq!(status["stream"]["rate_hz"], 3.0, "{}", status["stream"]);
}

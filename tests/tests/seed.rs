//! The seed's conventions, as the seed writes them: instance `node_001`, the seed's model
//! file names, and its hot-reload script (`tests/seed/test_hotreload.sh`: mosquitto_pub,
//! `{"command", "params"}` without a request id) run against a running Orion. Every command
//! gets exactly one ack, and each change is applied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orion_tests::fixtures;
use orion_tests::system::{Spec, System};
use serde_json::Value;

/// The seed's names for the fixtures: YOLOv3-tiny as `n`, the synthetic `m` at both sizes,
/// and a `yolo11m_fp32_640.onnx` (the real fall model) that the plain `_640` name outranks.
fn seed_models(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let real = fixtures::fixture("models/real").unwrap();
    let synthetic = fixtures::fixture("models/synthetic").unwrap();
    for (from, to) in [
        (
            real.join("yolo11n_yolov3-tiny_640.onnx"),
            "yolo11n_640.onnx",
        ),
        (
            real.join("yolo11n_yolov3-tiny_320.onnx"),
            "yolo11n_320.onnx",
        ),
        (
            synthetic.join("yolo11m_synthetic_640.onnx"),
            "yolo11m_640.onnx",
        ),
        (
            synthetic.join("yolo11m_synthetic_320.onnx"),
            "yolo11m_320.onnx",
        ),
        (real.join("yolo11m_fall_640.onnx"), "yolo11m_fp32_640.onnx"),
    ] {
        std::os::unix::fs::symlink(from, dir.join(to)).unwrap();
    }
}

/// The commands the script sends, in its order (from its `send_command` lines).
fn script_commands(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("send_command '"))
        .map(|l| {
            let body: Value = serde_json::from_str(l.trim_end_matches('\'')).unwrap();
            assert!(
                body.get("request_id").is_none(),
                "the seed sends no request id"
            );
            body["command"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn the_seeds_hot_reload_script_is_acked_and_applied_on_node_001() {
    let models = std::env::temp_dir().join(format!("orion-seed-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&models);
    seed_models(&models);
    let sys = System::start(Spec {
        instance: Some("node_001".into()),
        models: Some(models.clone()),
        rate_hz: 5.0,
        size: 'n',
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    assert_eq!(op.topic("control"), "care/control/node_001");

    let script_path = fixtures::repo().join("tests/seed/test_hotreload.sh");
    let sent = script_commands(&std::fs::read_to_string(&script_path).unwrap());
    assert!(sent.len() >= 10, "{sent:?}");
    let out = Command::new("bash")
        .arg(&script_path)
        .env("MQTT_HOST", "127.0.0.1")
        .env("MQTT_PORT", sys.mqtt_port.to_string())
        .env("PAUSE_S", "1")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One ack per command, every one a success, each naming its instance; the script's
    // own subscriber printed them too.
    let health = op.topic("health");
    let acked = |op: &orion_tests::operator::Operator| -> Vec<Value> {
        op.seen
            .iter()
            .filter(|a| a.topic == health)
            .filter_map(|a| a.json())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked(&op).len() < sent.len() && std::time::Instant::now() < deadline {
        op.pull(Duration::from_millis(200));
    }
    op.pull(Duration::from_secs(1));
    let acks = acked(&op);
    let count = |names: Vec<&str>| {
        let mut m = BTreeMap::new();
        for n in names {
            *m.entry(n.to_string()).or_insert(0) += 1;
        }
        m
    };
    assert_eq!(
        count(
            acks.iter()
                .map(|a| a["command_ack"].as_str().unwrap())
                .collect()
        ),
        count(sent.iter().map(String::as_str).collect()),
        "{acks:#?}"
    );
    for a in &acks {
        assert_eq!(a["status"], "success", "{a}");
        assert_eq!(a["instance_id"], "node_001", "{a}");
        assert_eq!(a["request_id"], Value::Null, "{a}");
    }
    assert_eq!(
        printed.matches("care/health/node_001 ").count(),
        sent.len(),
        "{printed}"
    );
    // The repeated pause is harmless and says so.
    let pauses: Vec<&Value> = acks
        .iter()
        .filter(|a| a["command_ack"] == "pause_inference")
        .collect();
    assert_eq!(pauses[0]["data"]["changed"], true, "{:?}", pauses);
    assert_eq!(pauses[1]["data"]["changed"], false, "{:?}", pauses);

    // Applied: the desired state holds the script's settings...
    let status = sys.o.status().unwrap();
    let desired = &status["desired"];
    assert_eq!(desired["rate_hz"], 2.0, "{desired}");
    assert_eq!(desired["model_size"], "m", "{desired}");
    assert_eq!(desired["paused"], false, "{desired}");
    assert_eq!(desired["auto_focus"], true, "{desired}");
    assert_eq!(
        desired["auto_focus_params"]["strategy"], "smoothing",
        "{desired}"
    );
    assert_eq!(desired["auto_focus_params"]["alpha"], 0.5, "{desired}");
    assert_eq!(desired["rois"][0]["width"], 0.5, "{desired}");
    // ...and the detections show them: the seed's yolo11m files, inferring on the ROI.
    // (One frame in `[occupancy] full_look_s` is looked at whole: of three in a row at
    // 2 Hz, at most one.)
    let from = op.seen.len();
    op.wait_detections(from, 3, Duration::from_secs(30))
        .unwrap();
    let recent: Vec<Value> = op
        .detections_from(from)
        .into_iter()
        .filter_map(|i| op.seen[i].json())
        .collect();
    let d = recent
        .iter()
        .rev()
        .find(|d| d["data"]["metadata"]["roi_source"] == "external")
        .unwrap_or_else(|| panic!("no detection on the ROI among {recent:?}"));
    let meta = &d["data"]["metadata"];
    assert_eq!(meta["model_size"], "m", "{d}");
    assert_eq!(d["instance_id"], "node_001", "{d}");
    // Both of the seed's m files were found (which of two 640 names wins is
    // `orion_config::models`' unit test).
    let detector = &status["detector"];
    assert_eq!(detector["model"], "m", "{detector}");
    assert_eq!(
        detector["sizes_loaded"],
        serde_json::json!([320, 640]),
        "{detector}"
    );

    drop(sys);
    std::fs::remove_dir_all(&models).unwrap();
}

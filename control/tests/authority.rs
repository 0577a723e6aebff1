//! Who may command a room over MQTT: `[mqtt] allowed_commands`, an allowed shutdown that
//! says who, response topics kept to this instance. Real mosquitto, real oriond.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use orion_tests::mqtt::{Watch, publish};
use serde_json::json;

mod common;
use common::{ACK_WAIT, Rig};

#[test]
fn mqtt_may_not_take_the_room_dark_unless_allowed() {
    let mut r = Rig::start();
    let capture = r.o.child_pid("capture").unwrap();
    for (command, params) in [
        ("restart_process", json!({"name": "capture"})),
        ("shutdown", json!({})),
    ] {
        let ack = r.send(command, params);
        assert_eq!(ack["status"], "error", "{ack}");
        assert_eq!(ack["error_kind"], "refused", "{ack}");
        assert!(
            ack["error"].as_str().unwrap().contains("allowed_commands"),
            "{ack}"
        );
    }
    // Nothing happened: the same capture, oriond answering, still online.
    assert_eq!(r.o.child_pid("capture").unwrap(), capture);
    let oriond = r.o.pid();
    let status = r.ok("get_status", json!({}));
    assert_eq!(status["oriond"]["pid"], oriond, "{status}");
    assert!(!orion_tests::oriond::process_gone(oriond));
    let refused = r.o.status().unwrap();
    assert!(
        refused["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "RUNNING")
    );
    let availability = r.topic("availability");
    assert_eq!(
        r.watch
            .seen
            .iter()
            .rev()
            .find(|s| s.topic == availability)
            .map(|s| s.payload.clone()),
        Some("online".to_string())
    );
}

#[test]
fn an_allowed_mqtt_shutdown_says_who_before_the_room_goes_offline() {
    let mut r = Rig::start_with("allowed_commands = [\"get_status\", \"shutdown\"]");
    // Only what the list names: a setting is refused now.
    let ack = r.send("pause_inference", json!({}));
    assert_eq!(ack["error_kind"], "refused", "{ack}");
    let ack = r.send("shutdown", json!({}));
    assert_eq!(ack["status"], "success", "{ack}");
    let rid = ack["request_id"].as_str().unwrap().to_string();
    let (status, availability) = (r.topic("status"), r.topic("availability"));
    let record = r
        .watch
        .wait_for("status naming the shutdown", Duration::from_secs(15), |s| {
            s.topic == status && s.json().is_some_and(|v| v["shutdown"]["by"] == "mqtt")
        })
        .unwrap();
    assert_eq!(
        record.json().unwrap()["shutdown"]["request_id"],
        rid.as_str()
    );
    r.watch
        .wait_for("offline", Duration::from_secs(15), |s| {
            s.topic == availability && s.payload == "offline"
        })
        .unwrap();
    // oriond exits 0: a unit with Restart=on-failure leaves the room stopped, and the
    // retained status above tells the backend why.
    let exit = r.o.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    // A late subscriber sees the record (retained).
    let mut late = Watch::start(r.broker.port, &status).unwrap();
    let kept = late
        .wait_for("retained status", Duration::from_secs(10), |s| {
            s.topic == status
        })
        .unwrap();
    assert_eq!(kept.json().unwrap()["shutdown"]["by"], "mqtt");
}

#[test]
fn response_topics_outside_this_instance_are_refused() {
    let mut r = Rig::start();
    let other = "care/replies/another-room";
    for (topic, rid) in [
        ("replies/+", "w1"),
        ("$SYS/x", "w2"),
        (other, "w3"),
        (r.topic("status").as_str(), "w4"),
    ] {
        publish(
            r.broker.port,
            &r.topic("control"),
            &format!(r#"{{"command": "pause_inference", "request_id": "{rid}"}}"#),
            &[("response-topic", topic)],
        )
        .unwrap();
        let health = r.topic("health");
        let ack = r
            .watch
            .wait_for(&format!("ack {rid}"), ACK_WAIT, |s| {
                s.topic == health && s.json().is_some_and(|v| v["request_id"] == rid)
            })
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(ack["error_kind"], "refused", "{topic}: {ack}");
        assert!(
            ack["error"].as_str().unwrap().contains("response topic"),
            "{ack}"
        );
    }
    r.drain();
    assert!(
        !r.watch.seen.iter().any(|s| s.topic == other),
        "published into another room"
    );
    // Refused whole: the pause was not applied.
    assert_eq!(r.o.status().unwrap()["desired"]["paused"], false);
}

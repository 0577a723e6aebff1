//! Two boxes left at one instance id: orion-control notices another client taking its MQTT
//! session, on a real mosquitto, and says so in its status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use orion_tests::oriond::START_TIMEOUT;

mod common;
use common::Rig;

/// Two boxes left at the same instance id evict each other from the broker: a client that
/// connects with the room's client id takes its session, and the room says so in its status
/// (on MQTT and in oriond's, where `orionctl` and the metrics read it).
#[test]
fn another_client_with_the_rooms_client_id_is_noticed() {
    let mut r = Rig::start();
    let twin = format!("orion-{}", r.o.instance);
    let status = r.topic("status");
    for _ in 0..3 {
        let ok = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &r.broker.port.to_string()])
            .args(["-i", &twin, "-t", "twin/hello", "-m", "hi"])
            .status()
            .unwrap();
        assert!(ok.success());
        let took =
            r.o.wait_for("a session takeover", Duration::from_secs(5), |s| {
                s["mqtt"]["session_takeovers"]
                    .as_u64()
                    .is_some_and(|n| n >= 1)
            });
        if took.is_ok() {
            break;
        }
    }
    let s =
        r.o.wait_for("the takeover and the room back", START_TIMEOUT, |s| {
            s["mqtt"]["session_takeovers"]
                .as_u64()
                .is_some_and(|n| n >= 1)
                && s["mqtt"]["connected"] == true
        })
        .unwrap();
    assert!(
        s["mqtt"]["connects"].as_u64().unwrap() >= 2,
        "{}",
        s["mqtt"]
    );
    // The retained MQTT status says it too, with the client id in the last error.
    r.watch
        .wait_for("the takeover in the MQTT status", START_TIMEOUT, |m| {
            m.topic == status
                && m.json().is_some_and(|v| {
                    v["mqtt"]["session_takeovers"]
                        .as_u64()
                        .is_some_and(|n| n >= 1)
                })
        })
        .unwrap();
}

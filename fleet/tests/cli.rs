//! `orion-fleet` against real rooms on a real mosquitto: the rooms it lists, a group
//! command with every member's ack, and a room that does not answer named, exit status 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use orion_tests::mqtt::{Mosquitto, Watch};
use orion_tests::oriond::Oriond;
use serde_json::Value;

fn fleet(port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orion-fleet"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .output()
        .unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn rooms_are_listed_and_a_group_command_names_who_did_not_answer() {
    let broker = Mosquitto::start().unwrap();
    let mut watch = Watch::start(broker.port, "care/#").unwrap();
    let mut floor: Vec<Oriond> = (0..2)
        .map(|_| Oriond::start(Some(broker.port), "groups = [\"floor-2\"]").unwrap())
        .collect();
    let other = Oriond::start(Some(broker.port), "").unwrap();
    for o in floor.iter().chain([&other]) {
        let topic = format!("care/status/{}", o.instance);
        watch
            .wait_for("retained status", std::time::Duration::from_secs(60), |s| {
                s.topic == topic && s.json().is_some_and(|v| v["mqtt"]["connected"] == true)
            })
            .unwrap();
    }

    let out = fleet(broker.port, &["rooms", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let rooms = lines(&out);
    let ids: Vec<&str> = rooms
        .iter()
        .map(|r| r["instance_id"].as_str().unwrap())
        .collect();
    for o in floor.iter().chain([&other]) {
        assert!(ids.contains(&o.instance.as_str()), "{ids:?}");
    }
    let first = rooms
        .iter()
        .find(|r| r["instance_id"] == floor[0].instance.as_str())
        .unwrap();
    assert_eq!(first["availability"], "online", "{first}");
    assert_eq!(first["groups"][0], "floor-2", "{first}");
    assert!(
        first["model"].is_string() && first["rate_hz"].is_number(),
        "{first}"
    );
    // The table says the same for people.
    let table = fleet(broker.port, &["rooms"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(&floor[1].instance));

    let out = fleet(
        broker.port,
        &[
            "send",
            "--group",
            "floor-2",
            "--json",
            "set_inference_rate",
            "--params",
            r#"{"rate_hz": 2}"#,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let acks = lines(&out);
    assert_eq!(acks.len(), 2, "{acks:?}");
    for a in &acks {
        assert_eq!(a["ack"]["status"], "success", "{a}");
        assert_eq!(a["ack"]["group"], "floor-2", "{a}");
    }
    for o in &floor {
        assert_eq!(o.status().unwrap()["desired"]["rate_hz"], 2.0);
    }
    assert_ne!(other.status().unwrap()["desired"]["rate_hz"], 2.0);

    // A member that is gone is named, and the exit status says so.
    let gone = floor.pop().unwrap();
    let gone_id = gone.instance.clone();
    drop(gone);
    let out = fleet(
        broker.port,
        &[
            "send",
            "--group",
            "floor-2",
            "--timeout-s",
            "3",
            "get_status",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&gone_id) && l.contains("no answer")),
        "{text}"
    );
    assert!(text.contains("1 answered, 1 missing"), "{text}");

    // Bad input: a clear error, exit status 2, nothing sent.
    let out = fleet(
        broker.port,
        &["send", "--room", "x", "get_status", "--params", "[1]"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON object"));
    let out = Command::new(env!("CARGO_BIN_EXE_orion-fleet"))
        .args(["--port", "1", "rooms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

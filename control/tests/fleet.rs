//! Rooms as a fleet: commands to a group of rooms, several broker nodes (moving to the
//! next when one goes), and a real clustered broker (RabbitMQ, two nodes) on which a node
//! dies without a command lost. Real mosquitto / RabbitMQ, real orionds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use orion_tests::mqtt::{Mosquitto, Watch, publish};
use orion_tests::oriond::Oriond;
use orion_tests::rabbitmq::RabbitCluster;
use serde_json::{Value, json};

mod common;
use common::ACK_WAIT;

fn acks_for(watch: &mut Watch, rid: &str, n: usize) -> Vec<Value> {
    watch
        .wait_count(&format!("{n} acks of {rid}"), ACK_WAIT, 0, n, |s| {
            s.topic.starts_with("care/health/") && s.json().is_some_and(|v| v["request_id"] == rid)
        })
        .unwrap();
    watch
        .seen
        .iter()
        .filter(|s| s.topic.starts_with("care/health/"))
        .filter_map(|s| Some((s.topic.clone(), s.json()?)))
        .filter(|(_, v)| v["request_id"] == rid)
        .map(|(topic, mut v)| {
            v["_topic"] = json!(topic);
            v
        })
        .collect()
}

#[test]
fn a_group_command_reaches_every_member_and_each_acks_with_its_id() {
    let broker = Mosquitto::start().unwrap();
    let mut watch = Watch::start(broker.port, "care/#").unwrap();
    let member = "groups = [\"floor-2\", \"wing-a\"]";
    let rooms: Vec<Oriond> = (0..3)
        .map(|_| Oriond::start(Some(broker.port), member).unwrap())
        .collect();
    // One outside the group: it must take nothing sent to floor-2.
    let outsider = Oriond::start(Some(broker.port), "groups = [\"floor-3\"]").unwrap();
    let ids: BTreeSet<String> = rooms.iter().map(|o| o.instance.clone()).collect();

    publish(
        broker.port,
        "care/control/group/floor-2",
        r#"{"command": "pause_inference", "request_id": "g-1"}"#,
        &[],
    )
    .unwrap();
    let acks = acks_for(&mut watch, "g-1", 3);
    let acked: BTreeSet<String> = acks
        .iter()
        .map(|a| {
            assert_eq!(a["status"], "success", "{a}");
            assert_eq!(a["group"], "floor-2", "{a}");
            let id = a["instance_id"].as_str().unwrap().to_string();
            // Each on its own ack topic.
            assert_eq!(a["_topic"], format!("care/health/{id}"), "{a}");
            id
        })
        .collect();
    assert_eq!(acked, ids);
    for room in &rooms {
        assert_eq!(room.status().unwrap()["desired"]["paused"], true);
    }
    assert_eq!(outsider.status().unwrap()["desired"]["paused"], false);

    // What a group may not do is refused by every member, and changes nothing.
    let zones = json!({"command": "set_zones", "request_id": "g-2",
        "params": {"zones": [{"name": "bed", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]}]}});
    publish(
        broker.port,
        "care/control/group/wing-a",
        &zones.to_string(),
        &[],
    )
    .unwrap();
    for a in acks_for(&mut watch, "g-2", 3) {
        assert_eq!(a["error_kind"], "refused", "{a}");
        assert!(
            a["error"]
                .as_str()
                .unwrap()
                .contains("group_allowed_commands"),
            "{a}"
        );
    }
    for room in &rooms {
        let status = room.status().unwrap();
        assert_eq!(status["desired"]["zones"], json!([]), "{status}");
    }

    // Every payload a backend reads from a wildcard names its instance.
    for kind in ["status", "occupancy"] {
        for id in &ids {
            let topic = format!("care/{kind}/{id}");
            let seen = watch
                .wait_for(&topic, ACK_WAIT, |s| {
                    s.topic == topic && !s.payload.is_empty()
                })
                .unwrap();
            assert_eq!(seen.json().unwrap()["instance_id"], id.as_str(), "{kind}");
        }
    }
    // And counts what came to it as a group.
    let status_topic = format!("care/status/{}", rooms[0].instance);
    watch
        .wait_for("group commands counted", ACK_WAIT, |s| {
            s.topic == status_topic && s.json().is_some_and(|v| v["mqtt"]["group_commands"] == 2)
        })
        .unwrap();
    drop(outsider);
}

#[test]
fn a_room_moves_to_the_next_broker_node_when_its_node_dies() {
    let mut a = Mosquitto::start().unwrap();
    let b = Mosquitto::start().unwrap();
    let hosts = format!(
        "hosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
        a.port, b.port
    );
    let mut on_b = Watch::start(b.port, "care/#").unwrap();
    let o = Oriond::start(Some(a.port), &hosts).unwrap();
    let status_topic = format!("care/status/{}", o.instance);
    let mut on_a = Watch::start(a.port, "care/#").unwrap();
    let first = on_a
        .wait_for("status on node a", ACK_WAIT, |s| {
            s.topic == status_topic && s.json().is_some_and(|v| v["mqtt"]["connected"] == true)
        })
        .unwrap();
    assert_eq!(
        first.json().unwrap()["mqtt"]["broker"],
        format!("127.0.0.1:{}", a.port)
    );
    a.kill().unwrap();
    let availability = format!("care/availability/{}", o.instance);
    on_b.wait_for("online on node b", ACK_WAIT, |s| {
        s.topic == availability && s.payload == "online"
    })
    .unwrap();
    let moved = on_b
        .wait_for("status on node b", ACK_WAIT, |s| {
            s.topic == status_topic && s.json().is_some_and(|v| v["mqtt"]["connected"] == true)
        })
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(moved["mqtt"]["broker"], format!("127.0.0.1:{}", b.port));
    assert_eq!(moved["mqtt"]["failovers"], 1, "{moved}");
    // Commands work on the new node.
    publish(
        b.port,
        &format!("care/control/{}", o.instance),
        r#"{"command": "get_status", "request_id": "after-failover"}"#,
        &[],
    )
    .unwrap();
    let health = format!("care/health/{}", o.instance);
    let ack = on_b
        .wait_for("ack on node b", ACK_WAIT, |s| {
            s.topic == health
                && s.json()
                    .is_some_and(|v| v["request_id"] == "after-failover")
        })
        .unwrap();
    assert_eq!(ack.json().unwrap()["status"], "success");
}

/// Two RabbitMQ nodes in one cluster; the room is on node a. Node a is SIGKILLed, and
/// while the room is away commands are published on node b: the room moves to b, finds its
/// session there (mirrored), and acks every command exactly as sent.
#[test]
fn on_a_rabbitmq_cluster_a_dying_node_loses_no_command() {
    let mut cluster = RabbitCluster::start(2).unwrap();
    let (pa, pb) = (cluster.nodes[0].mqtt_port, cluster.nodes[1].mqtt_port);
    let extra = format!(
        "version = \"3.1.1\"\nhosts = [\"127.0.0.1:{pa}\", \"127.0.0.1:{pb}\"]\ngroups = [\"floor-1\"]"
    );
    // RabbitMQ 3.10 speaks MQTT 3.1.1, and keeps retained messages from wildcard
    // subscriptions: watch before the room starts.
    let mut on_b = Watch::start_with(pb, "care/#", false).unwrap();
    let o = Oriond::start(Some(pa), &extra).unwrap();
    let control = format!("care/control/{}", o.instance);
    let health = format!("care/health/{}", o.instance);
    let status_topic = format!("care/status/{}", o.instance);
    on_b.wait_for("the room on node a", ACK_WAIT, |s| {
        s.topic == status_topic
            && s.json()
                .is_some_and(|v| v["mqtt"]["broker"] == format!("127.0.0.1:{pa}"))
    })
    .unwrap();
    // A command through the cluster (published on b, the room on a) before the failure.
    publish(
        pb,
        &control,
        r#"{"command": "get_status", "request_id": "before"}"#,
        &[],
    )
    .unwrap();
    on_b.wait_for("ack before", ACK_WAIT, |s| {
        s.topic == health && s.json().is_some_and(|v| v["request_id"] == "before")
    })
    .unwrap();

    cluster.kill_node(0).unwrap();
    let sent: Vec<String> = (0..10).map(|i| format!("during-{i}")).collect();
    for (i, rid) in sent.iter().enumerate() {
        let topic = if i % 2 == 0 {
            control.clone()
        } else {
            "care/control/group/floor-1".to_string()
        };
        let body = json!({"command": "get_status", "request_id": rid});
        publish(pb, &topic, &body.to_string(), &[]).unwrap();
    }
    on_b.wait_count(
        "every command acked",
        Duration::from_secs(120),
        0,
        sent.len(),
        |s| {
            s.topic == health
                && s.json().is_some_and(|v| {
                    v["request_id"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("during-"))
                })
        },
    )
    .unwrap();
    let acked: BTreeSet<String> = on_b
        .seen
        .iter()
        .filter(|s| s.topic == health)
        .filter_map(|s| s.json())
        .filter_map(|v| v["request_id"].as_str().map(str::to_string))
        .filter(|r| r.starts_with("during-"))
        .collect();
    assert_eq!(acked, sent.iter().cloned().collect::<BTreeSet<_>>());
    assert!(
        on_b.seen
            .iter()
            .filter(|s| s.topic == health)
            .filter_map(|s| s.json())
            .all(|v| v["status"] == "success"),
        "an error ack"
    );
    let moved = on_b
        .wait_for("status from node b", ACK_WAIT, |s| {
            s.topic == status_topic
                && s.json()
                    .is_some_and(|v| v["mqtt"]["broker"] == format!("127.0.0.1:{pb}"))
        })
        .unwrap()
        .json()
        .unwrap();
    assert!(moved["mqtt"]["failovers"].as_u64().unwrap() >= 1, "{moved}");
}

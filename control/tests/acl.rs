//! The shipped per-room ACL (packaging/mosquitto/orion.acl), proven on a real mosquitto with
//! a password file for two rooms: room A's credentials cannot command room B nor read B's
//! commands, and a real room A (oriond, orion-control with credentials) does everything it
//! needs without one publish or subscription denied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orion_tests::mqtt::{Mosquitto, Watch, publish_as};
use orion_tests::oriond::Oriond;
use serde_json::json;

mod common;
use common::ACK_WAIT;

const BACKEND: (&str, &str) = ("care-backend", "backend-secret");

/// The template's room block for `room` (its instance id) in `group`, as the template's
/// header says to copy it.
fn room_block(template: &str, room: &str, group: &str) -> String {
    let start = template.find("user room-1").expect("the room block");
    let end = template[start..]
        .find("\n\n")
        .map(|e| start + e)
        .expect("the block's end");
    template[start..end]
        .replace("room-1", room)
        .replace("room_1", &room.replace('-', "_"))
        .replace("floor-1", group)
}

fn backend_block(template: &str) -> String {
    let start = template
        .find("user care-backend")
        .expect("the backend block");
    template[start..].to_string()
}

fn passwd(file: &Path, user: &str, password: &str) {
    let mut cmd = Command::new("mosquitto_passwd");
    if !file.exists() {
        cmd.arg("-c");
    }
    let status = cmd
        .arg("-b")
        .arg(file)
        .args([user, password])
        .status()
        .unwrap();
    assert!(status.success());
}

fn mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_shipped_acl_keeps_each_room_to_its_own_topics() {
    let (room_a, dir) = Oriond::scratch().unwrap();
    let room_b = format!("{room_a}-b");
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/mosquitto/orion.acl"),
    )
    .unwrap();
    let acl = dir.join("orion.acl");
    std::fs::write(
        &acl,
        format!(
            "{}\n\n{}\n\n{}",
            room_block(&template, &room_a, "floor-1"),
            room_block(&template, &room_b, "floor-2"),
            backend_block(&template)
        ),
    )
    .unwrap();
    let passwords = dir.join("passwd");
    for (user, password) in [
        (room_a.as_str(), "secret-a"),
        (room_b.as_str(), "secret-b"),
        BACKEND,
    ] {
        passwd(&passwords, user, password);
    }
    // mosquitto may drop to its own user: it must read both.
    mode(&dir, 0o755);
    mode(&acl, 0o644);
    mode(&passwords, 0o644);
    let broker = Mosquitto::start_conf(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\nlog_dest stderr\nlog_type all\n",
        passwords.display(),
        acl.display()
    ))
    .unwrap();
    let port = broker.port;
    let (cred_a, cred_b) = ((room_a.as_str(), "secret-a"), (room_b.as_str(), "secret-b"));
    let auth_a = Some(cred_a);
    let mut backend = Watch::start_as(
        port,
        "care/#",
        true,
        Some(BACKEND),
        &format!("care/control/{room_b}-probe"),
    )
    .unwrap();

    // Room A's credentials cannot command room B: the broker refuses the publish, and a
    // backend reading everything never sees it.
    let control_b = format!("care/control/{room_b}");
    let evil = r#"{"command": "pause_inference", "request_id": "from-a"}"#;
    publish_as(port, auth_a, &control_b, evil).unwrap();
    publish_as(port, auth_a, "care/control/group/floor-2", evil).unwrap();
    // ... nor speak in B's name.
    publish_as(port, auth_a, &format!("care/status/{room_b}"), "{}").unwrap();
    let marker = r#"{"command": "get_status", "request_id": "from-backend"}"#;
    publish_as(port, Some(BACKEND), &control_b, marker).unwrap();
    backend
        .wait_for("the backend's own command", ACK_WAIT, |s| {
            s.topic == control_b && s.payload.contains("from-backend")
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    backend
        .wait_for("anything more", Duration::from_millis(500), |_| false)
        .ok();
    assert!(
        !backend
            .seen
            .iter()
            .any(|s| s.payload.contains("from-a") || s.topic == format!("care/status/{room_b}")),
        "room A's publish reached B's topics: {:?}",
        backend.seen
    );
    for topic in [
        control_b.as_str(),
        "care/control/group/floor-2",
        &format!("care/status/{room_b}"),
    ] {
        assert!(
            broker
                .log()
                .lines()
                .any(|l| l.contains("Denied PUBLISH") && l.contains(&format!("'{topic}'"))),
            "no denial logged for {topic}"
        );
    }

    // Room A's credentials cannot read B's commands, while B's own can.
    let read_as = |auth: (&str, &str)| {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args([
                "-u", auth.0, "-P", auth.1, "-t", &control_b, "-C", "1", "-W", "6",
            ]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    let (snoop, own) = (read_as(cred_a), read_as(cred_b));
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        let body = json!({"command": "get_status", "request_id": format!("b-{i}")});
        publish_as(port, Some(BACKEND), &control_b, &body.to_string()).unwrap();
    }
    let (snoop, own) = (snoop.join().unwrap(), own.join().unwrap());
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("get_status"),
        "room B's own credentials did not read its commands"
    );
    assert!(
        snoop.stdout.is_empty(),
        "room A read B's commands: {}",
        String::from_utf8_lossy(&snoop.stdout)
    );

    // A real room A with its credentials: online, status, occupancy, zones, Home
    // Assistant, acks of its own and of its group's commands — and nothing denied.
    let secret = dir.join("mqtt-password");
    std::fs::write(&secret, "secret-a").unwrap();
    mode(&secret, 0o600);
    let text = Oriond::config_text(
        &room_a,
        &dir,
        Some(port),
        &format!(
            "username = \"{room_a}\"\npassword_file = \"{}\"\ngroups = [\"floor-1\"]\n\
             [homeassistant]\ndiscovery = true\n\
             [[zones]]\nname = \"bed\"\npolygon = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]\n",
            secret.display()
        ),
    )
    .unwrap();
    let a = Oriond::start_with(room_a.clone(), dir.clone(), &text).unwrap();
    a.wait_all_running(orion_tests::oriond::START_TIMEOUT)
        .unwrap();
    for topic in [
        format!("care/availability/{room_a}"),
        format!("care/status/{room_a}"),
        format!("care/occupancy/{room_a}"),
        format!("care/occupancy/{room_a}/bed"),
    ] {
        backend
            .wait_for(&topic, ACK_WAIT, |s| {
                s.topic == topic && !s.payload.is_empty()
            })
            .unwrap();
    }
    let health_a = format!("care/health/{room_a}");
    for (topic, rid) in [
        (format!("care/control/{room_a}"), "own"),
        ("care/control/group/floor-1".to_string(), "group"),
    ] {
        let body = json!({"command": "get_status", "request_id": rid});
        publish_as(port, Some(BACKEND), &topic, &body.to_string()).unwrap();
        let ack = backend
            .wait_for(&format!("ack {rid}"), ACK_WAIT, |s| {
                s.topic == health_a && s.json().is_some_and(|v| v["request_id"] == rid)
            })
            .unwrap();
        assert_eq!(ack.json().unwrap()["status"], "success");
    }
    let client = format!("orion-{room_a}");
    let denied: Vec<String> = broker
        .log()
        .lines()
        .filter(|l| l.contains("Denied") && l.contains(&client))
        .map(str::to_string)
        .collect();
    assert!(denied.is_empty(), "room A was denied: {denied:#?}");
    drop(a);
}

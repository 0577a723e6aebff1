//! What orion-control must never lose or double, on a real mosquitto under a real oriond:
//! a command the broker redelivers after orion-control died is applied once and its ack
//! says so; commands beyond the in-flight limit are refused, each with one ack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::mqtt::{Mosquitto, Watch, publish};
use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::json;

mod common;
use common::{ACK_WAIT, Rig};

#[test]
fn a_command_the_broker_redelivers_is_applied_once_and_its_ack_says_so() {
    let mut r = Rig::start();
    // Up longer than startsecs: the kill below is a crash, not a failed start.
    r.o.wait_up("control", 0.6, START_TIMEOUT).unwrap();
    let plain = r.send("get_status", json!({}));
    assert!(plain.get("redelivered").is_none(), "{plain}");
    // control is frozen, the broker hands it the command, control dies without having
    // acknowledged it: the broker delivers it again (DUP) to the successor.
    let control = r.o.child_pid("control").unwrap();
    kill(Pid::from_raw(control as i32), Signal::SIGSTOP).unwrap();
    let body = json!({"command": "set_attention_rois", "request_id": "again-1",
        "params": {"rois": [{"x": 0.25, "y": 0.0, "width": 0.5, "height": 0.5}]}});
    let control_topic = r.topic("control");
    publish(r.broker.port, &control_topic, &body.to_string(), &[]).unwrap();
    // The watcher got it from the same broker pass that wrote it to control's socket.
    r.watch
        .wait_for("the command at the broker", ACK_WAIT, |s| {
            s.topic == control_topic && s.payload.contains("again-1")
        })
        .unwrap();
    kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
    let health = r.topic("health");
    let ack = r
        .watch
        .wait_for("the successor's ack", START_TIMEOUT, |s| {
            s.topic == health && s.json().is_some_and(|v| v["request_id"] == "again-1")
        })
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ack["status"], "success", "{ack}");
    assert_eq!(ack["redelivered"], true, "{ack}");
    assert_ne!(r.o.child_pid("control").unwrap(), control);
    r.drain();
    let acks = r
        .watch
        .seen
        .iter()
        .filter(|s| s.topic == health && s.json().is_some_and(|v| v["request_id"] == "again-1"))
        .count();
    assert_eq!(acks, 1, "one ack for the redelivered command");
    let x = r.o.status().unwrap()["desired"]["rois"][0]["x"].as_f64();
    assert_eq!(x, Some(0.25));
    // And the retained status counts it.
    let status_topic = r.topic("status");
    r.watch
        .wait_for("commands_redelivered in the status", ACK_WAIT, |s| {
            s.topic == status_topic
                && s.json()
                    .is_some_and(|v| v["mqtt"]["commands_redelivered"].as_u64().unwrap_or(0) >= 1)
        })
        .unwrap();
}

#[test]
fn commands_beyond_the_in_flight_limit_are_refused_not_dropped() {
    let broker = Mosquitto::start().unwrap();
    let mut watch = Watch::start(broker.port, "care/#").unwrap();
    let (instance, dir) = Oriond::scratch().unwrap();
    let text = Oriond::config_text(&instance, &dir, Some(broker.port), "")
        .unwrap()
        .replace(
            "status_interval_s = 2",
            "status_interval_s = 2\nmax_inflight_commands = 1",
        );
    let o = Oriond::start_with(instance.clone(), dir, &text).unwrap();
    o.wait_all_running(START_TIMEOUT).unwrap();
    // Ten model changes in one burst: a load takes a while, so most find one in flight.
    let lines: Vec<String> = (0..10)
        .map(|i| {
            let size = ["s", "m"][i % 2];
            json!({"command": "set_model_size", "params": {"size": size}, "request_id": format!("q{i}")}).to_string()
        })
        .collect();
    let mut child = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            &format!("care/control/{instance}"),
            "-l",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all((lines.join("\n") + "\n").as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let health = format!("care/health/{instance}");
    let mut refused = 0;
    for i in 0..10 {
        let rid = format!("q{i}");
        let ack = watch
            .wait_for(&rid, ACK_WAIT, |s| {
                s.topic == health && s.json().is_some_and(|v| v["request_id"] == rid.as_str())
            })
            .unwrap()
            .json()
            .unwrap();
        if ack["status"] == "error" && ack["error"].as_str().unwrap().contains("in flight") {
            refused += 1;
        }
    }
    assert!(
        refused >= 1,
        "no command was refused with max_inflight_commands = 1"
    );
    // A marker's ack comes after every earlier ack (a duplicate too, if there were one).
    publish(
        broker.port,
        &format!("care/control/{instance}"),
        r#"{"command": "get_status", "request_id": "marker"}"#,
        &[],
    )
    .unwrap();
    watch
        .wait_for("the marker's ack", ACK_WAIT, |s| {
            s.topic == health && s.json().is_some_and(|v| v["request_id"] == "marker")
        })
        .unwrap();
    for i in 0..10 {
        let rid = format!("q{i}");
        let n = watch
            .seen
            .iter()
            .filter(|s| {
                s.topic == health && s.json().is_some_and(|v| v["request_id"] == rid.as_str())
            })
            .count();
        assert_eq!(n, 1, "{rid} acked {n} times");
    }
}

/// A retained command is delivered again with every (re)subscription: after orion-control
/// restarts, it arrives with the retain flag and is answered `retained`, not applied (its
/// first, live delivery carries no flag and is applied like any command). Cleared with an
/// empty retained message, it stops coming.
#[test]
fn a_retained_command_is_not_applied_again_after_a_reconnect() {
    let mut r = Rig::start();
    r.o.wait_up("control", 0.6, START_TIMEOUT).unwrap();
    let control_topic = r.topic("control");
    let port = r.broker.port.to_string();
    let retained = |payload: Option<&str>| {
        let mut cmd = std::process::Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &port]);
        cmd.args(["-q", "1", "-r", "-t", &control_topic]);
        match payload {
            Some(p) => cmd.args(["-m", p]),
            None => cmd.arg("-n"),
        };
        assert!(cmd.status().unwrap().success());
    };
    retained(Some(
        r#"{"command": "pause_inference", "request_id": "stale-1"}"#,
    ));
    let health = r.topic("health");
    let ack_of = |r: &mut Rig, status: &str| {
        r.watch
            .wait_for(&format!("a {status} ack of stale-1"), START_TIMEOUT, |s| {
                s.topic == health
                    && s.json()
                        .is_some_and(|v| v["request_id"] == "stale-1" && v["status"] == status)
            })
            .unwrap()
            .json()
            .unwrap()
    };
    ack_of(&mut r, "success");
    r.ok("resume_inference", json!({}));

    // orion-control restarts and subscribes again: the broker sends the retained pause.
    let control = r.o.child_pid("control").unwrap();
    kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
    let ack = ack_of(&mut r, "error");
    assert_eq!(ack["error_kind"], "retained", "{ack}");
    assert_eq!(ack["command_ack"], "pause_inference", "{ack}");
    let why = ack["error"].as_str().unwrap();
    assert!(why.contains("empty retained message"), "{why}");
    r.drain();
    let status = r.o.status().unwrap();
    assert_eq!(status["desired"]["paused"], false, "not applied: {status}");
    // The detector (started paused at boot) runs unpaused.
    let running = r.o.wait_for("the detector unpaused", ACK_WAIT, |s| {
        s["detector"]["paused"] == false && s["detector"]["state"] == "running"
    });
    assert!(running.is_ok(), "{running:?}");
    let status_topic = r.topic("status");
    let mqtt_status = r.watch.wait_for("the count in the status", ACK_WAIT, |s| {
        s.topic == status_topic
            && s.json()
                .is_some_and(|v| v["mqtt"]["commands_retained"].as_u64() >= Some(1))
    });
    assert!(mqtt_status.is_ok());

    // Cleared: the next restart gets nothing.
    retained(None);
    let seen = r.watch.seen.len();
    let control = r.o.child_pid("control").unwrap();
    kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
    r.online();
    r.drain();
    let again = r.watch.seen[seen..]
        .iter()
        .any(|s| s.topic == health && s.json().is_some_and(|v| v["request_id"] == "stale-1"));
    assert!(!again, "a cleared retained command is not delivered again");
}

/// The oversize commands of one run: their error acks on the health topic.
fn oversize_acks(r: &Rig) -> usize {
    let health = r.topic("health");
    r.watch
        .seen
        .iter()
        .filter(|s| {
            s.topic == health
                && s.json().is_some_and(|v| {
                    v["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("over the 65536-byte limit"))
                })
        })
        .count()
}

/// A command over the 64 KiB limit is answered once with an error, acknowledged to the
/// broker, and never comes back: not while orion-control runs, not after it restarts. A
/// command too large to read at all (over 4 MiB) is not delivered to orion-control, so it
/// cannot drop its connection again and again. Under MQTT 5 and 3.1.1.
#[test]
fn an_oversize_command_is_answered_once_and_never_redelivered() {
    for version in ["5", "3.1.1"] {
        let mut r = Rig::start_with(&format!("version = \"{version}\""));
        r.o.wait_up("control", 0.6, START_TIMEOUT).unwrap();
        let control_topic = r.topic("control");
        let big = format!(
            r#"{{"command": "pause_inference", "request_id": "big", "pad": "{}"}}"#,
            "x".repeat(100 * 1024)
        );
        publish(r.broker.port, &control_topic, &big, &[]).unwrap();
        let health = r.topic("health");
        let ack = r
            .watch
            .wait_for("the oversize command's ack", START_TIMEOUT, |s| {
                s.topic == health && s.payload.contains("over the 65536-byte limit")
            })
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(ack["status"], "error", "{version}: {ack}");
        assert_eq!(ack["error_kind"], "bad_request", "{version}: {ack}");
        // Too large to read (over 4 MiB). MQTT 5: orion-control announced its limit and
        // the broker keeps the packet back. MQTT 3.1.1 cannot announce one: orion-control
        // reconnects once with a clean session, so the broker discards it, instead of
        // losing its connection to it again and again.
        let huge = format!(
            r#"{{"command": "pause_inference", "request_id": "huge", "pad": "{}"}}"#,
            "x".repeat(5 << 20)
        );
        publish(r.broker.port, &control_topic, &huge, &[]).unwrap();
        let status_topic = r.topic("status");
        let want = u64::from(version == "3.1.1");
        let counted = r.watch.wait_for("the count in the status", ACK_WAIT, |s| {
            s.topic == status_topic
                && s.json().is_some_and(|v| {
                    v["mqtt"]["unreadable_discarded"].as_u64() == Some(want)
                        && v["mqtt"]["connected"] == true
                })
        });
        assert!(counted.is_ok(), "{version}: {counted:?}");
        r.drain();
        let connects = r.o.stderr_text().matches("MQTT connected").count();
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_eq!(
            r.o.stderr_text().matches("MQTT connected").count(),
            connects,
            "{version}: orion-control keeps reconnecting"
        );
        r.drain();
        let control = r.o.child_pid("control").unwrap();
        kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
        r.online();
        std::thread::sleep(std::time::Duration::from_secs(2));
        r.drain();
        assert_eq!(oversize_acks(&r), 1, "{version}: answered more than once");
        let status = r.o.status().unwrap();
        assert_eq!(status["desired"]["paused"], false, "{version}: applied");
        let restarts = r.o.process("control").unwrap()["restarts"].as_u64();
        assert_eq!(
            restarts,
            Some(1),
            "{version}: control restarted more than by the kill"
        );
    }
}

fn model_swaps(r: &Rig) -> usize {
    r.o.stderr_text()
        .lines()
        .filter(|l| l.contains("orion_child=\"detector\"") && l.contains("model swapped"))
        .count()
}

/// orion-control hands a command to oriond and dies before acknowledging it to the broker:
/// oriond applies it, the broker delivers it again to the next orion-control, and oriond
/// recognises it (by request id and payload) and answers it again without applying it a
/// second time. One effect, one ack, marked `redelivered`.
#[test]
fn a_command_applied_before_orion_control_died_is_answered_again_not_applied_twice() {
    let mut r = Rig::start();
    r.o.wait_up("control", 0.6, START_TIMEOUT).unwrap();
    let swaps = model_swaps(&r);
    let control = r.o.child_pid("control").unwrap();
    let body =
        json!({"command": "set_model_size", "request_id": "once-1", "params": {"size": "s"}});
    let control_topic = r.topic("control");
    publish(r.broker.port, &control_topic, &body.to_string(), &[]).unwrap();
    r.watch
        .wait_for("the command at the broker", ACK_WAIT, |s| {
            s.topic == control_topic && s.payload.contains("once-1")
        })
        .unwrap();
    // orion-control forwards at once; the model takes about a second to load, so it dies
    // with the command handed over and unanswered.
    std::thread::sleep(std::time::Duration::from_millis(150));
    kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
    let health = r.topic("health");
    let ack = r
        .watch
        .wait_for("the successor's ack", START_TIMEOUT, |s| {
            s.topic == health && s.json().is_some_and(|v| v["request_id"] == "once-1")
        })
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ack["status"], "success", "{ack}");
    assert_eq!(ack["redelivered"], true, "{ack}");
    r.drain();
    let acks = r
        .watch
        .seen
        .iter()
        .filter(|s| s.topic == health && s.json().is_some_and(|v| v["request_id"] == "once-1"))
        .count();
    assert_eq!(
        acks, 1,
        "one ack: the first orion-control died before its own"
    );
    assert_eq!(model_swaps(&r), swaps + 1, "applied once");
    let log = r.o.stderr_text();
    assert!(
        log.contains("repeated request answered again, not applied")
            || log.contains("repeated request waits for the first one's answer"),
        "oriond did not see the repeat"
    );
}

/// oriond remembers what it answered across its own restart: the same command (id and
/// payload) arriving again after oriond restarted is answered from memory, and a newer
/// setting stays.
#[test]
fn oriond_remembers_answered_commands_across_its_restart() {
    let mut r = Rig::start();
    let rois = |x: f64| json!({"rois": [{"x": x, "y": 0.0, "width": 0.5, "height": 0.5}]});
    let first =
        json!({"command": "set_attention_rois", "request_id": "keep-1", "params": rois(0.25)});
    let ack = r.send_raw(&first.to_string(), "keep-1");
    assert_eq!(ack["status"], "success", "{ack}");
    // oriond restarts (its children with it).
    r.o.signal(Signal::SIGTERM).unwrap();
    r.o.spawn().unwrap();
    r.o.wait_all_running(START_TIMEOUT).unwrap();
    r.online();
    r.ok("set_attention_rois", rois(0.5));
    // The first command again, byte for byte: answered as before, not applied.
    let mark = r.watch.seen.len();
    publish(r.broker.port, &r.topic("control"), &first.to_string(), &[]).unwrap();
    let health = r.topic("health");
    let is_ack = |s: &orion_tests::mqtt::Seen| {
        s.topic == health && s.json().is_some_and(|v| v["request_id"] == "keep-1")
    };
    r.watch
        .wait_count("the repeat's ack", ACK_WAIT, mark, 1, is_ack)
        .unwrap();
    let again = r.watch.seen[mark..]
        .iter()
        .find(|s| is_ack(s))
        .and_then(|s| s.json())
        .unwrap();
    assert_eq!(again["status"], "success", "{again}");
    let x = r.o.status().unwrap()["desired"]["rois"][0]["x"].as_f64();
    assert_eq!(
        x,
        Some(0.5),
        "the repeat was applied again after oriond's restart"
    );
    assert!(
        r.o.stderr_text()
            .contains("repeated request answered again, not applied"),
        "oriond did not recognise the repeat"
    );
}

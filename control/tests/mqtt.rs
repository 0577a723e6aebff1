//! orion-control on a real mosquitto, under a real oriond with its real children; the
//! traffic checked with mosquitto_pub / mosquitto_sub.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::mqtt::{Watch, publish};
use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::{Value, json};

mod common;
use common::{ACK_WAIT, Rig, allow_all};

#[test]
fn every_command_of_the_catalog_round_trips_with_its_effect() {
    let mut r = Rig::start_with(&allow_all());
    let status = r.ok("get_status", json!({}));
    assert_eq!(status["instance_id"], r.o.instance.as_str());
    assert!(
        status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "RUNNING"),
        "{status}"
    );

    r.ok("pause_inference", json!({}));
    assert_eq!(r.o.status().unwrap()["desired"]["paused"], true);
    r.o.wait_for("detector paused", Duration::from_secs(5), |s| {
        s["detector"]["paused"] == true
    })
    .unwrap();
    r.ok("resume_inference", json!({}));
    r.o.wait_for("detector running", Duration::from_secs(5), |s| {
        s["detector"]["paused"] == false
    })
    .unwrap();

    let detector = r.o.child_pid("detector").unwrap();
    let capture = r.o.child_pid("capture").unwrap();
    let data = r.ok("set_inference_rate", json!({"rate_hz": 2}));
    assert_eq!(data["rate_hz"], 2.0);
    assert_eq!(
        r.o.child_pid("detector").unwrap(),
        detector,
        "detector restarted by a rate change"
    );
    assert_ne!(r.o.child_pid("capture").unwrap(), capture);
    r.o.wait_for("capture at 2 Hz", Duration::from_secs(10), |s| {
        s["stream"]["rate_hz"] == 2.0
    })
    .unwrap();

    let data = r.ok("set_model_size", json!({"size": "s"}));
    assert_eq!(data["size"], "s");
    r.o.wait_for("model s", Duration::from_secs(10), |s| {
        s["detector"]["model"] == "s"
    })
    .unwrap();

    let roi = json!({"x": 0.25, "y": 0.25, "width": 0.5, "height": 0.5});
    r.ok("set_attention_rois", json!({"rois": [roi]}));
    assert_eq!(r.ok("get_attention_rois", json!({}))["rois"][0], roi);
    r.o.wait_for("detector ROI", Duration::from_secs(5), |s| {
        s["detector"]["attention_rois"][0] == roi
    })
    .unwrap();
    r.ok("clear_attention_rois", json!({}));
    assert_eq!(r.ok("get_attention_rois", json!({}))["rois"], json!([]));

    r.ok(
        "set_auto_focus_strategy",
        json!({"strategy": "velocity", "velocity_threshold": 0.1}),
    );
    let focus = r.ok("get_auto_focus_strategy", json!({}));
    assert_eq!(focus["params"]["strategy"], "velocity");
    assert_eq!(focus["params"]["velocity_threshold"], 0.1);
    r.ok("enable_auto_focus", json!({}));
    r.o.wait_for("auto-focus on", Duration::from_secs(5), |s| {
        s["detector"]["auto_focus"]["enabled"] == true
    })
    .unwrap();
    let stats = r.ok("get_auto_focus_stats", json!({}));
    assert!(stats.is_object(), "{stats}");
    r.ok("clear_auto_focus_history", json!({}));
    r.ok("disable_auto_focus", json!({}));
    assert_eq!(r.o.status().unwrap()["desired"]["auto_focus"], false);

    let capture = r.o.child_pid("capture").unwrap();
    let data = r.ok("restart_process", json!({"name": "capture"}));
    assert_eq!(data["state"], "RUNNING");
    assert_ne!(r.o.child_pid("capture").unwrap(), capture);

    // Detections flow with the instance id, and the retained status is there.
    let detections = r.topic("inferences") + "/person_detection";
    let d = r
        .watch
        .wait_for("a detection", Duration::from_secs(20), |s| {
            s.topic == detections
        })
        .unwrap();
    let d = d.json().unwrap();
    assert_eq!(d["instance_id"], r.o.instance.as_str());
    assert!(d["latency_ms"].as_f64().unwrap() >= 0.0);
    let status_topic = r.topic("status");
    let s = r
        .watch
        .wait_for("status", Duration::from_secs(10), |s| {
            s.topic == status_topic
        })
        .unwrap();
    assert!(s.json().unwrap()["mqtt"]["connected"] == true);

    r.ok("shutdown", json!({}));
    let availability = r.topic("availability");
    r.watch
        .wait_for("offline", Duration::from_secs(15), |s| {
            s.topic == availability && s.payload == "offline"
        })
        .unwrap();
}

#[test]
fn the_seed_script_works_unchanged() {
    let mut r = Rig::start();
    let control = r.topic("control");
    publish(
        r.broker.port,
        &control,
        r#"{"command": "set_model_size", "params": {"size": "m"}}"#,
        &[],
    )
    .unwrap();
    publish(
        r.broker.port,
        &control,
        r#"{"command": "set_attention_rois", "params": {"rois": [{"x": 0.1, "y": 0.1, "width": 0.4, "height": 0.6}]}}"#,
        &[],
    )
    .unwrap();
    let health = r.topic("health");
    for command in ["set_model_size", "set_attention_rois"] {
        let ack = r
            .watch
            .wait_for(command, ACK_WAIT, |s| {
                s.topic == health && s.json().is_some_and(|v| v["command_ack"] == command)
            })
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(ack["status"], "success", "{ack}");
        assert!(ack["request_id"].is_null());
    }
    let s =
        r.o.wait_for("model m and the ROI", Duration::from_secs(10), |s| {
            s["detector"]["model"] == "m" && s["detector"]["attention_rois"][0]["height"] == 0.6
        });
    assert!(s.is_ok(), "{s:?}");
}

#[test]
fn bad_commands_get_one_error_ack_each_and_change_nothing() {
    let mut r = Rig::start();
    let before = r.o.status().unwrap()["desired"].clone();
    let many: Vec<Value> = (0..17)
        .map(|_| json!({"x": 0, "y": 0, "width": 1, "height": 1}))
        .collect();
    let cases: Vec<(String, &str)> = vec![
        (r#"{"command": "set_inference_rate", "params": {"rate_hz": "fast"}, "request_id": "b1"}"#.into(), "rate_hz"),
        (r#"{"command": "set_inference_rate", "params": {"rate_hz": -1}, "request_id": "b2"}"#.into(), "0.1..=30"),
        (r#"{"command": "set_inference_rate", "params": {"rate_hz": 31}, "request_id": "b3"}"#.into(), "0.1..=30"),
        (r#"{"command": "set_model_size", "params": {"size": "xl"}, "request_id": "b4"}"#.into(), "n, s, m, l, x"),
        (r#"{"command": "set_attention_rois", "params": {"rois": [{"x": -0.1, "y": 0, "width": 0.5, "height": 0.5}]}, "request_id": "b5"}"#.into(), "0 <= x"),
        (json!({"command": "set_attention_rois", "params": {"rois": many}, "request_id": "b6"}).to_string(), "1..=16"),
        (r#"{"command": "set_auto_focus_strategy", "params": {"strategy": "velocity", "alpha": 7}, "request_id": "b7"}"#.into(), "alpha"),
        (r#"{"command": "launch_rockets", "request_id": "b8"}"#.into(), "unknown command"),
        (r#"{"command": "restart_process", "params": {"name": "bash"}, "request_id": "b9"}"#.into(), "broker, control, detector, capture"),
    ];
    for (payload, expect) in &cases {
        let rid = serde_json::from_str::<Value>(payload).unwrap()["request_id"]
            .as_str()
            .unwrap()
            .to_string();
        let ack = r.send_raw(payload, &rid);
        assert_eq!(ack["status"], "error", "{payload}: {ack}");
        assert!(
            ack["error"].as_str().unwrap().contains(expect),
            "{payload}: {ack}"
        );
    }
    // Not JSON at all, NaN, and 1 MiB: acked as "unknown" (no request id can be read).
    let health = r.topic("health");
    let unknown_before = r
        .watch
        .seen
        .iter()
        .filter(|s| s.topic == health && s.json().is_some_and(|v| v["command_ack"] == "unknown"))
        .count();
    let unreadable = [
        "{nope".to_string(),
        r#"{"command": "set_inference_rate", "params": {"rate_hz": NaN}}"#.to_string(),
        format!(
            r#"{{"command": "get_status", "pad": "{}"}}"#,
            "x".repeat(1 << 20)
        ),
    ];
    for (i, payload) in unreadable.iter().enumerate() {
        publish(r.broker.port, &r.topic("control"), payload, &[]).unwrap();
        let from = r.watch.seen.len();
        r.watch
            .wait_count("error ack", ACK_WAIT, 0, unknown_before + i + 1, |s| {
                s.topic == health && s.json().is_some_and(|v| v["command_ack"] == "unknown")
            })
            .unwrap();
        let _ = from;
    }
    assert_eq!(
        r.o.status().unwrap()["desired"],
        before,
        "a rejected command changed the desired state"
    );
    // Exactly one ack per command: each request id once, each unreadable payload once.
    r.drain();
    for (payload, _) in &cases {
        let rid = serde_json::from_str::<Value>(payload).unwrap()["request_id"]
            .as_str()
            .unwrap()
            .to_string();
        let n = r
            .watch
            .seen
            .iter()
            .filter(|s| s.topic == health && s.json().is_some_and(|v| v["request_id"] == rid))
            .count();
        assert_eq!(n, 1, "{rid} acked {n} times");
    }
    let unknown = r
        .watch
        .seen
        .iter()
        .filter(|s| s.topic == health && s.json().is_some_and(|v| v["command_ack"] == "unknown"))
        .count();
    assert_eq!(
        unknown - unknown_before,
        unreadable.len(),
        "acks of unreadable payloads"
    );
}

#[test]
fn availability_last_will_and_a_broker_restart() {
    let mut r = Rig::start();
    let availability = r.topic("availability");
    // control dies without saying goodbye: the broker publishes the last will.
    let control = r.o.child_pid("control").unwrap();
    r.watch.clear();
    kill(Pid::from_raw(control as i32), Signal::SIGKILL).unwrap();
    r.watch
        .wait_for("last will", Duration::from_secs(10), |s| {
            s.topic == availability && s.payload == "offline"
        })
        .unwrap();
    r.watch
        .wait_for("online again", START_TIMEOUT, |s| {
            s.topic == availability && s.payload == "online"
        })
        .unwrap();
    // The broker goes away for a while and comes back empty: Orion reconnects on its own,
    // without orion-control being restarted.
    r.o.wait_state("control", "RUNNING", START_TIMEOUT).unwrap();
    let control = r.o.child_pid("control").unwrap();
    r.broker.kill().unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // the outage

    r.broker.restart().unwrap();
    r.watch = Watch::start(r.broker.port, "care/#").unwrap();
    let online = r
        .watch
        .wait_for(
            "online after the broker restart",
            Duration::from_secs(60),
            |s| s.topic == availability && s.payload == "online",
        )
        .unwrap();
    let _ = online;
    // The broker holds "online" retained again: a subscriber arriving now gets it as such.
    let mut late = Watch::start(r.broker.port, &availability).unwrap();
    let retained = late
        .wait_for("retained online", Duration::from_secs(10), |s| {
            s.topic == availability
        })
        .unwrap();
    assert!(
        retained.retained && retained.payload == "online",
        "{retained:?}"
    );
    let status_topic = r.topic("status");
    // A status published just before the broker died, unacknowledged, is sent again after
    // the reconnect (QoS 1 is at least once) ahead of the fresh one: wait for the fresh one.
    let status = r
        .watch
        .wait_for("status after the reconnect", Duration::from_secs(10), |s| {
            s.topic == status_topic
                && s.json()
                    .is_some_and(|v| v["mqtt"]["connects"].as_u64() >= Some(2))
        })
        .unwrap();
    let mqtt = status.json().unwrap()["mqtt"].clone();
    // Detections made while the broker was away were dropped and counted, not queued.
    assert!(mqtt["detections_dropped"].as_u64().unwrap() >= 1, "{mqtt}");
    r.ok("pause_inference", json!({}));
    assert_eq!(r.o.status().unwrap()["desired"]["paused"], true);
    assert_eq!(
        r.o.child_pid("control").unwrap(),
        control,
        "orion-control was restarted instead of reconnecting"
    );
}

#[test]
fn mqtt5_response_topic_and_correlation_data_are_honoured() {
    let mut r = Rig::start();
    let mut replies = Watch::start(r.broker.port, "replies/#").unwrap();
    publish(
        r.broker.port,
        &r.topic("control"),
        r#"{"command": "get_attention_rois", "request_id": "v5"}"#,
        &[
            ("response-topic", "replies/me"),
            ("correlation-data", "corr-42"),
        ],
    )
    .unwrap();
    let reply = replies
        .wait_for("reply", ACK_WAIT, |s| s.topic == "replies/me")
        .unwrap();
    assert_eq!(reply.correlation, "corr-42");
    let v = reply.json().unwrap();
    assert_eq!(
        (v["command_ack"].as_str(), v["request_id"].as_str()),
        (Some("get_attention_rois"), Some("v5"))
    );
    // Also on the health topic, for everyone watching.
    let health = r.topic("health");
    r.watch
        .wait_for("health ack", ACK_WAIT, |s| {
            s.topic == health && s.payload.contains("\"v5\"")
        })
        .unwrap();
}

#[test]
fn the_embedded_broker_is_a_supervised_local_mosquitto_speaking_mqtt5() {
    let port = orion_tests::mqtt::free_port().unwrap();
    let (instance, dir) = Oriond::scratch().unwrap();
    let text = Oriond::config_text(&instance, &dir, Some(port), "")
        .unwrap()
        .replace("[mqtt]\n", "[mqtt]\nembedded = true\n");
    let mut o = Oriond::start_with(instance.clone(), dir, &text).unwrap();
    o.wait_all_running(START_TIMEOUT).unwrap();
    // The broker is one of oriond's children, started first and stopped last.
    let names: Vec<String> = o.status().unwrap()["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["broker", "control", "detector", "capture"]);
    let mut watch = Watch::start_with(port, "care/#", true).unwrap();
    let availability = format!("care/availability/{instance}");
    let seen = watch
        .wait_for("online (retained)", Duration::from_secs(20), |s| {
            s.topic == availability
        })
        .unwrap();
    assert_eq!(seen.payload, "online");
    publish(
        port,
        &format!("care/control/{instance}"),
        r#"{"command": "pause_inference", "request_id": "e1"}"#,
        &[],
    )
    .unwrap();
    let ack = watch
        .wait_for("ack", ACK_WAIT, |s| {
            s.topic.starts_with("care/health/") && s.payload.contains("\"e1\"")
        })
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ack["status"], "success", "{ack}");
    // It never outlives oriond (parent-death signal set before exec).
    let broker = o.child_pid("broker").unwrap();
    o.signal(Signal::SIGKILL).unwrap();
    let t = std::time::Instant::now();
    while !orion_tests::oriond::process_gone(broker) {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the broker outlived oriond"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `openssl` in `dir`: a CA, a server certificate for localhost, a client certificate.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=orion-test-ca",
    ]);
    for who in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
            "-subj",
            "/CN=localhost",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
    }
}

#[test]
fn tls_with_a_client_certificate_and_a_password_file_over_mqtt_3_1_1() {
    let (instance, dir) = Oriond::scratch().unwrap();
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    make_certs(&tls);
    let port = orion_tests::mqtt::free_port().unwrap();
    let passwd = tls.join("passwd");
    let st = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["orion", "s3cret-pass"])
        .status()
        .unwrap();
    assert!(st.success());
    // `user root`: started as root, mosquitto would otherwise drop to its own user, which
    // cannot read the test's 0600 key.
    let conf = tls.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {p}\ncafile {t}/ca.pem\ncertfile {t}/server.pem\nkeyfile {t}/server.key\nrequire_certificate true\n",
            p = passwd.display(),
            t = tls.display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("mosquitto");
    cmd.arg("-c").arg(&conf);
    let _broker = orion_tests::child::ChildGuard::spawn(cmd).unwrap();
    std::fs::write(tls.join("mqtt-password"), "s3cret-pass\n").unwrap();
    // Secret files must not be open to other users (oriond refuses to start otherwise).
    std::fs::set_permissions(
        tls.join("mqtt-password"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let text = Oriond::config_text(&instance, &dir, Some(port), "")
        .unwrap()
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"\nversion = \"3.1.1\"")
        .replace(
            "status_interval_s = 2",
            &format!(
                "status_interval_s = 2\nusername = \"orion\"\npassword_file = \"{t}/mqtt-password\"\n[mqtt.tls]\nca = \"{t}/ca.pem\"\ncert = \"{t}/client.pem\"\nkey = \"{t}/client.key\"",
                t = tls.display()
            ),
        );
    let o = Oriond::start_with(instance.clone(), dir.clone(), &text).unwrap();
    o.wait_all_running(START_TIMEOUT).unwrap();
    // control reports itself connected through TLS with its certificate and password.
    o.wait_for("MQTT connected", Duration::from_secs(30), |_| {
        let out = std::process::Command::new("mosquitto_sub")
            .args([
                "-h",
                "localhost",
                "-p",
                &port.to_string(),
                "-t",
                &format!("care/availability/{instance}"),
                "-C",
                "1",
                "-W",
                "3",
            ])
            .args(["-u", "orion", "-P", "s3cret-pass"])
            .arg("--cafile")
            .arg(tls.join("ca.pem"))
            .arg("--cert")
            .arg(tls.join("client.pem"))
            .arg("--key")
            .arg(tls.join("client.key"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "online"
    })
    .unwrap();
    let log = o.stderr_text();
    assert!(
        !log.contains("s3cret-pass"),
        "the password reached the logs"
    );
}

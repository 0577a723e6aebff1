//! What keeps processes and rooms apart, with real oriond instances, a real mosquitto and
//! real signals:
//!
//! - two instances on one box: separate rings, sockets and topics; killing a child of one
//!   leaves the other untouched;
//! - the capture's sandbox: the same policy the capture applies (via `sandbox-probe`)
//!   cannot read the MQTT password or the config, connect to oriond's socket or the
//!   broker, signal oriond, or reach the detector's tensors; the real capture runs with
//!   no_new_privs, seccomp and Landlock;
//! - authority per connection: a real capture's and a real detector's own connections to
//!   oriond (taken out of the running processes with pidfd_getfd) cannot shut oriond
//!   down, stop a process, reload the config, or answer a request sent to the detector;
//! - the sealed ring: whoever holds it (the capture's own descriptor) cannot shrink or grow
//!   it, so the detector keeps running and inferring.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::mqtt::{Mosquitto, Watch};
use orion_tests::oriond::Oriond;
use serde_json::Value;

fn pid_of(o: &Oriond, name: &str) -> u32 {
    o.child_pid(name).unwrap()
}

/// The descriptor of `pid` whose link names the memfd `label` (e.g. the tensor buffer).
fn memfd_of(pid: u32, label: &str) -> Option<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|l| l.to_string_lossy().starts_with(&format!("/memfd:{label}")))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// Waits for `n` more detections of `instance`.
fn detections(watch: &mut Watch, instance: &str, n: usize) {
    let topic = format!("care/inferences/{instance}/person_detection");
    let from = watch.seen.len();
    watch
        .wait_count(&topic, Duration::from_secs(30), from, n, |s| {
            s.topic == topic
        })
        .unwrap();
}

#[test]
fn two_instances_share_a_box_and_a_broker_but_nothing_else() {
    let broker = Mosquitto::start().unwrap();
    let mut watch = Watch::start(broker.port, "care/#").unwrap();
    let a = Oriond::start(Some(broker.port), "").unwrap();
    let b = Oriond::start(Some(broker.port), "").unwrap();
    assert_ne!(a.instance, b.instance);
    assert_ne!(a.socket, b.socket);
    // Each capture writes its own instance's ring.
    let (ca, cb) = (pid_of(&a, "capture"), pid_of(&b, "capture"));
    assert!(memfd_of(ca, &format!("orion-{}-frames", a.instance)).is_some());
    assert!(memfd_of(cb, &format!("orion-{}-frames", b.instance)).is_some());
    assert!(memfd_of(ca, &format!("orion-{}-frames", b.instance)).is_none());
    detections(&mut watch, &a.instance, 3);
    detections(&mut watch, &b.instance, 3);
    // Every message names its instance in its topic and body.
    for s in watch
        .seen
        .iter()
        .filter(|s| s.topic.contains("/inferences/"))
    {
        let v: Value = s.json().unwrap();
        let id = v["instance_id"].as_str().unwrap();
        assert!(
            s.topic.contains(&format!("/{id}/")),
            "{} carries {id}",
            s.topic
        );
    }

    // Kill a's capture and detector: b does not notice.
    let before_b: Vec<u32> = ["control", "detector", "capture"]
        .iter()
        .map(|n| pid_of(&b, n))
        .collect();
    let da = pid_of(&a, "detector");
    kill(Pid::from_raw(ca as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(da as i32), Signal::SIGKILL).unwrap();
    a.wait_for(
        "a's capture and detector back",
        Duration::from_secs(60),
        |s| {
            let procs = s["processes"].as_array().unwrap();
            procs.iter().all(|p| p["state"] == "RUNNING")
                && procs
                    .iter()
                    .any(|p| p["name"] == "capture" && p["pid"] != ca)
                && procs
                    .iter()
                    .any(|p| p["name"] == "detector" && p["pid"] != da)
        },
    )
    .unwrap();
    detections(&mut watch, &a.instance, 2);
    let after_b: Vec<u32> = ["control", "detector", "capture"]
        .iter()
        .map(|n| pid_of(&b, n))
        .collect();
    assert_eq!(before_b, after_b, "b's processes were touched");
    let status_b = b.status().unwrap();
    for p in status_b["processes"].as_array().unwrap() {
        assert_eq!(p["restarts"], 0, "b restarted {}", p["name"]);
    }
    detections(&mut watch, &b.instance, 2);
}

#[test]
fn the_sandboxed_capture_reaches_nothing_but_its_camera_and_its_ring() {
    let broker = Mosquitto::start().unwrap();
    let (instance, dir) = Oriond::scratch().unwrap();
    // An MQTT password file, as a real box has one (the broker here allows anonymous).
    let password = dir.join("mqtt-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = Oriond::config_text(&instance, &dir, Some(broker.port), "")
        .unwrap()
        .replace(
            "host = \"127.0.0.1\"",
            &format!(
                "host = \"127.0.0.1\"\nusername = \"orion\"\npassword_file = \"{}\"",
                password.display()
            ),
        );
    let o = Oriond::start_with(instance, dir, &text).unwrap();
    o.wait_all_running(orion_tests::oriond::START_TIMEOUT)
        .unwrap();
    let capture = pid_of(&o, "capture");
    let detector = pid_of(&o, "detector");
    let worker = o.status().unwrap()["detector"]["worker_pid"]
        .as_u64()
        .unwrap() as u32;

    // The real capture: confined, and says so in the status operators read.
    let proc_status = std::fs::read_to_string(format!("/proc/{capture}/status")).unwrap();
    assert!(proc_status.contains("NoNewPrivs:\t1"), "{proc_status}");
    assert!(proc_status.contains("Seccomp:\t2"), "{proc_status}");
    let stream = o.status().unwrap()["stream"].clone();

    // The same sandbox, applied by the probe for the same source, tries what an exploit
    // inside the decoder would try: at Landlock ABI 1, at 2 (Debian 12's kernel 6.1), and
    // at what this kernel offers. What an old ABI lacks, seccomp covers.
    let tensors = memfd_of(detector, &format!("orion-{}-tensors", o.instance))
        .expect("the detector holds its tensor buffer");
    let worker_tensors = memfd_of(worker, &format!("orion-{}-tensors", o.instance))
        .expect("the worker holds the tensor buffer");
    let probe = |abi: Option<u8>| -> Value {
        let mut cmd = Command::new(orion_tests::bins::locate("sandbox-probe").unwrap());
        cmd.args(["--source", "test://ball"]);
        if let Some(abi) = abi {
            cmd.args(["--landlock-abi", &abi.to_string()]);
        }
        let out = cmd
            .arg("--read")
            .arg(&password)
            .arg("--read")
            .arg(&o.config)
            .arg("--read")
            .arg(format!("/proc/{detector}/fd/{tensors}"))
            .arg("--read")
            .arg(format!("/proc/{worker}/fd/{worker_tensors}"))
            .arg("--read")
            .arg(format!("/proc/{}/environ", o.pid()))
            .args(["--read", "/dev/shm"])
            .arg("--unix")
            .arg(&o.socket)
            .args(["--tcp", &format!("127.0.0.1:{}", broker.port)])
            .args(["--signal", &o.pid().to_string()])
            .args(["--signal", &detector.to_string()])
            .args(["--truncate-fd-of", &format!("{capture}:3")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let host = probe(None);
    let kernel = host["kernel_abi"].as_u64().unwrap() as u8;
    assert!(kernel >= 1, "this kernel has no Landlock: {host}");
    // The real capture's sandbox is the probe's at the host's ABI, word for word.
    assert_eq!(stream["sandbox"], host["sandbox"], "{stream}");
    let mut reports = vec![host];
    for abi in [1u8, 2].into_iter().filter(|&a| a <= kernel) {
        reports.push(probe(Some(abi)));
    }
    for report in &reports {
        let results = report["results"].as_array().unwrap();
        assert_eq!(results.len(), 12, "{report}");
        for r in results {
            assert_eq!(r["allowed"], false, "the sandbox allowed {r} in {report}");
            // Refused by the sandbox (EACCES, EPERM), not by a missing file.
            let errno = r["errno"].as_i64().unwrap();
            assert!(errno == libc_eacces() || errno == libc_eperm(), "{r}");
        }
    }
    let abi2 = reports.iter().find(|r| r["landlock_abi"] == 2);
    if let Some(r) = abi2 {
        assert!(
            r["sandbox"].as_str().unwrap().contains("no TCP port rules")
                && r["sandbox"]
                    .as_str()
                    .unwrap()
                    .contains("signals by seccomp"),
            "the status must say what ABI 2 lacks: {r}"
        );
    }

    // Even outside the sandbox, nobody can resize the ring through the capture's
    // descriptor: the detector never takes SIGBUS.
    let ring = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{capture}/fd/3"))
        .unwrap();
    let len = ring.metadata().unwrap().len();
    for new_len in [0, len / 2, len * 2] {
        let err = ring.set_len(new_len).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(libc_eperm() as i32),
            "set_len({new_len})"
        );
    }
    drop(ring);
    let before = o.status().unwrap()["detector"]["results"]
        .as_u64()
        .unwrap_or(0);
    o.wait_for(
        "more results after the truncation attempts",
        Duration::from_secs(30),
        |s| s["detector"]["results"].as_u64().unwrap_or(0) > before + 3,
    )
    .unwrap();
    assert_eq!(pid_of(&o, "detector"), detector);
    assert_eq!(pid_of(&o, "capture"), capture);
}

fn libc_eacces() -> i64 {
    nix::errno::Errno::EACCES as i64
}

fn libc_eperm() -> i64 {
    nix::errno::Errno::EPERM as i64
}

/// The connection `pid` holds to oriond's socket, duplicated into this process (as a
/// compromised child would use it).
fn steal_connection(pid: u32, socket: &std::path::Path) -> std::os::unix::net::UnixStream {
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let Ok(owned) =
            rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
        else {
            continue;
        };
        let stream = std::os::unix::net::UnixStream::from(owned);
        if stream
            .peer_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p == socket))
            == Some(true)
        {
            return stream;
        }
    }
    panic!("{pid} holds no connection to {}", socket.display());
}

fn write_frame(stream: &mut std::os::unix::net::UnixStream, body: &[u8]) {
    orion_protocol::wire::write_message(stream, body).unwrap();
}

#[test]
fn a_childs_own_connection_cannot_command_oriond_or_answer_for_the_detector() {
    let o = Oriond::start(None, "").unwrap();
    o.wait_working(Duration::from_secs(60)).unwrap();
    let before: Vec<u32> = ["detector", "capture"]
        .iter()
        .map(|n| pid_of(&o, n))
        .collect();
    let mut capture = steal_connection(before[1], &o.socket);
    let mut detector = steal_connection(before[0], &o.socket);
    let forged = [
        serde_json::json!({"command": "shutdown"}),
        serde_json::json!({"command": "stop_process", "params": {"name": "detector"}}),
        serde_json::json!({"command": "stop_process", "params": {"name": "capture"}}),
        serde_json::json!({"command": "reload_config"}),
        serde_json::json!({"command": "pause_inference"}),
    ];
    for stream in [&mut capture, &mut detector] {
        for request in &forged {
            write_frame(stream, request.to_string().as_bytes());
        }
    }
    // The capture answers for the detector: acks for every id oriond may give the model
    // change an operator asks for now. Only the detector's own ack may settle it.
    let operator = std::thread::spawn({
        let socket = o.socket.clone();
        move || {
            let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            let body = serde_json::json!({"command": "set_model_size", "params": {"size": "s"}, "request_id": "op"});
            orion_protocol::wire::write_message(&mut s, body.to_string().as_bytes()).unwrap();
            let reply = orion_protocol::wire::read_message(&mut s).unwrap().unwrap();
            serde_json::from_slice::<Value>(&reply).unwrap()
        }
    });
    for id in 1..=400 {
        let ack = orion_protocol::Message::Ack(orion_protocol::Ack::new(
            "set_model_size",
            Some(format!("oriond-{id}")),
            Err(orion_protocol::AckError::new(
                orion_protocol::ErrorKind::Failed,
                "forged by the capture",
            )),
        ));
        write_frame(&mut capture, &orion_protocol::message::encode(&ack));
    }
    let answer = operator.join().unwrap();
    assert_eq!(answer["status"], "success", "{answer}");
    assert!(!answer.to_string().contains("forged"), "{answer}");
    assert_eq!(answer["data"]["size"], "s", "{answer}");

    // Nothing happened: oriond runs, its children are the same processes, not paused.
    let status = o
        .wait_for("the model change settled", Duration::from_secs(30), |s| {
            s["desired"]["model_size"] == "s"
        })
        .unwrap();
    let after: Vec<u32> = ["detector", "capture"]
        .iter()
        .map(|n| pid_of(&o, n))
        .collect();
    assert_eq!(before, after, "a child was stopped or restarted");
    assert_eq!(status["desired"]["paused"], false);
    for p in status["processes"].as_array().unwrap() {
        assert_eq!(p["state"], "RUNNING", "{p}");
    }
    // Counted per role, and said once per connection in the log.
    let authority = &status["oriond"]["authority"];
    assert!(
        authority["refused"]["capture"].as_u64().unwrap() >= 5 + 400,
        "{authority}"
    );
    assert!(
        authority["refused"]["detector"].as_u64().unwrap() >= 5,
        "{authority}"
    );
    let said = o
        .stderr_text()
        .lines()
        .filter(|l| l.contains("refused; this connection"))
        .count();
    assert!((2..=4).contains(&said), "logged {said} times");
}

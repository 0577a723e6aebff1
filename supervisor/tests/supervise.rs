//! oriond with its real children (orion-capture on a test pattern, orion-detector with the
//! real Python worker on synthetic models), real signals, and orionctl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::oriond::{Oriond, START_TIMEOUT, now_unix_us, process_gone};
use serde_json::{Value, json};

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

fn pids(o: &Oriond) -> Vec<(String, u64)> {
    let status = o.status().unwrap();
    status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn a_killed_child_is_noticed_at_once_and_comes_back_in_the_desired_state() {
    let broker = orion_tests::mqtt::Mosquitto::start().unwrap();
    let o = Oriond::start(Some(broker.port), "").unwrap();
    // Operator settings that must survive a detector crash.
    for (cmd, params) in [
        ("set_model_size", json!({"size": "s"})),
        (
            "set_attention_rois",
            json!({"rois": [{"x": 0.1, "y": 0.2, "width": 0.5, "height": 0.5}]}),
        ),
        ("pause_inference", json!({})),
        (
            "set_auto_focus_strategy",
            json!({"strategy": "velocity", "alpha": 0.5}),
        ),
    ] {
        let ack = o.command(cmd, params).unwrap();
        assert!(ack.is_success(), "{cmd}: {ack:?}");
    }
    for name in ["control", "detector", "capture"] {
        // Up longer than startsecs, so the kill is a crash and not a failed start.
        o.wait_for(&format!("{name} up 0.6 s"), START_TIMEOUT, |s| {
            s["processes"].as_array().is_some_and(|ps| {
                ps.iter().all(|p| p["state"] == "RUNNING")
                    && ps
                        .iter()
                        .any(|p| p["name"] == name && p["uptime_s"].as_f64().unwrap_or(0.0) >= 0.6)
            })
        })
        .unwrap();
        let before = pids(&o);
        let victim = o.child_pid(name).unwrap();
        let killed_at = now_unix_us();
        sigkill(victim);
        let status = o
            .wait_for(&format!("{name} restarted"), START_TIMEOUT, |s| {
                let p = s["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == name)
                    .unwrap();
                p["state"] == "RUNNING" && p["pid"].as_u64() != Some(u64::from(victim))
            })
            .unwrap();
        let p = status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        let noticed = p["last_exit"]["at_unix_us"].as_u64().unwrap();
        let detect_ms = (noticed.saturating_sub(killed_at)) as f64 / 1000.0;
        assert!(
            detect_ms < 100.0,
            "{name}: exit noticed after {detect_ms} ms"
        );
        assert!(
            p["last_exit"]["status"]
                .as_str()
                .unwrap()
                .contains("SIGKILL"),
            "{p}"
        );
        assert!(p["restarts"].as_u64().unwrap() >= 1);
        // Everyone else untouched.
        for (other, pid) in before.iter().filter(|(n, _)| n != name) {
            assert_eq!(
                pids(&o).iter().find(|(n, _)| n == other).unwrap().1,
                *pid,
                "{other} was restarted"
            );
        }
    }
    // The restarted detector runs the operator's settings, not the config's.
    let d = o
        .wait_for(
            "detector status with the desired state",
            Duration::from_secs(10),
            |s| s["detector"]["paused"] == true && s["detector"]["attention_rois"][0].is_object(),
        )
        .unwrap()["detector"]
        .clone();
    assert_eq!(d["model"], "s", "{d}");
    assert_eq!(d["attention_rois"][0]["y"], 0.2, "{d}");
    assert_eq!(d["auto_focus"]["strategy"], "velocity", "{d}");
    assert_eq!(
        d["results"], 0,
        "a restarted paused detector inferred a frame: {d}"
    );
}

#[test]
fn a_child_that_exits_at_once_goes_backoff_then_fatal_and_start_clears_it() {
    let (instance, dir) = Oriond::scratch().unwrap();
    let clip = dir.join("clip.mp4");
    let extra = "[supervisor]\nstartretries = 2\n";
    let text = Oriond::config_text(&instance, &dir, None, extra)
        .unwrap()
        .replace("test://ball", &format!("file://{}", clip.display()))
        // The supervisor table is already open: put the key there.
        .replace("[supervisor]\nstartretries = 2\n", "")
        .replace("stopwaitsecs = 3\n", "stopwaitsecs = 3\nstartretries = 2\n");
    let o = Oriond::start_with(instance, dir, &text).unwrap();
    // The clip does not exist: capture exits with a usage error every time.
    let seen_backoff = o
        .wait_for("capture BACKOFF", Duration::from_secs(30), |s| {
            s["processes"].as_array().unwrap().iter().any(|p| {
                p["name"] == "capture" && (p["state"] == "BACKOFF" || p["state"] == "FATAL")
            })
        })
        .unwrap();
    let fatal = o
        .wait_state("capture", "FATAL", Duration::from_secs(30))
        .unwrap();
    let p = fatal["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "capture")
        .unwrap()
        .clone();
    assert!(
        p["description"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{p} (first seen {seen_backoff})"
    );
    let (code, out, _) = o.ctl(&["status", "capture"]).unwrap();
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("FATAL"), "{out}");
    // The detector is unaffected.
    o.wait_state("detector", "RUNNING", START_TIMEOUT).unwrap();
    // The operator fixes the camera and starts it again.
    std::fs::copy(
        orion_tests::fixtures::fixture("footage/sample.mp4").unwrap(),
        &clip,
    )
    .unwrap();
    let (code, out, err) = o.ctl(&["start", "capture"]).unwrap();
    assert_eq!(code, 0, "{out} {err}");
    o.wait_working(START_TIMEOUT).unwrap();
    let (code, out, _) = o.ctl(&["status"]).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().all(|l| l.contains("RUNNING")), "{out}");
}

#[test]
fn killing_oriond_takes_its_children_along_and_a_new_one_starts_over_the_leftovers() {
    let mut o = Oriond::start(None, "").unwrap();
    let children: Vec<u32> = pids(&o).iter().map(|(_, p)| *p as u32).collect();
    let worker = o.status().unwrap()["detector"]["worker_pid"]
        .as_u64()
        .unwrap() as u32;
    o.signal(Signal::SIGKILL).unwrap();
    let t = Instant::now();
    let all = children.iter().copied().chain([worker]).collect::<Vec<_>>();
    while !all.iter().all(|p| process_gone(*p)) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "children still alive 1 s after oriond died: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The socket is left behind (a new oriond replaces it); ring and tensors were sealed
    // memfds and went with their last holder, so /dev/shm holds nothing of this instance.
    assert!(o.socket.exists());
    let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&o.instance))
        .collect();
    assert!(leftovers.is_empty(), "left in /dev/shm: {leftovers:?}");
    o.spawn().unwrap();
    o.wait_working(START_TIMEOUT).unwrap();
    assert_eq!(o.ctl(&["status"]).unwrap().0, 0);
}

/// Whether `pid` has no /proc entry at all: ended and reaped, not a zombie.
fn reaped(pid: u32, within: Duration) -> bool {
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if t.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn worker_pid(o: &Oriond) -> u32 {
    o.status().unwrap()["detector"]["worker_pid"]
        .as_u64()
        .unwrap() as u32
}

#[test]
fn a_killed_detectors_worker_is_reaped_by_oriond_and_a_stopped_oriond_leaves_no_zombie() {
    let mut o = Oriond::start(None, "").unwrap();
    let worker = worker_pid(&o);
    sigkill(o.child_pid("detector").unwrap());
    // The worker dies with its bridge and, orphaned, goes to oriond (the subreaper), not
    // to PID 1, which in a container may never reap it.
    assert!(
        reaped(worker, Duration::from_secs(10)),
        "the killed detector's worker {worker} was not reaped"
    );
    let log = o.stderr_text();
    assert!(
        log.lines()
            .any(|l| l.contains("reaped an orphan") && l.contains(&format!("pid={worker}"))),
        "oriond did not say it reaped {worker}"
    );
    o.wait_working(START_TIMEOUT).unwrap();
    // A clean stop: every process oriond ran, the new worker included, ends and is reaped.
    let mut all: Vec<u32> = pids(&o).iter().map(|(_, p)| *p as u32).collect();
    all.push(worker_pid(&o));
    let status = o.signal(Signal::SIGTERM).unwrap();
    assert!(status.success(), "oriond ended with {status} on SIGTERM");
    for pid in all {
        assert!(
            reaped(pid, Duration::from_secs(2)),
            "{pid} is left after oriond stopped"
        );
    }
}

#[test]
fn a_second_oriond_on_the_same_socket_refuses_to_start() {
    let o = Oriond::start(None, "").unwrap();
    o.wait_working(START_TIMEOUT).unwrap();
    let out = std::process::Command::new(orion_tests::bins::locate("oriond").unwrap())
        .arg("--config")
        .arg(&o.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another oriond is running"));
    assert_eq!(
        o.ctl(&["status"]).unwrap().0,
        0,
        "the first one is unharmed"
    );
}

#[test]
fn set_rate_restarts_capture_only_and_persists() {
    let mut o = Oriond::start(None, "").unwrap();
    let detector = o.child_pid("detector").unwrap();
    let capture = o.child_pid("capture").unwrap();
    // The camera URI (it may hold a password) is not on the world-readable command line.
    let cmdline = std::fs::read(format!("/proc/{capture}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("test://ball"));
    let t = Instant::now();
    let ack = o
        .command("set_inference_rate", json!({"rate_hz": 2.5}))
        .unwrap();
    let took = t.elapsed();
    assert!(ack.is_success(), "{ack:?}");
    assert_eq!(ack.data["rate_hz"], 2.5);
    assert!(took < Duration::from_secs(5), "rate change took {took:?}");
    assert_eq!(o.child_pid("detector").unwrap(), detector);
    assert_ne!(o.child_pid("capture").unwrap(), capture);
    let s = o
        .wait_for("capture at 2.5 Hz", Duration::from_secs(10), |s| {
            s["stream"]["rate_hz"] == 2.5
        })
        .unwrap();
    assert_eq!(s["desired"]["rate_hz"], 2.5);
    // Bad rates change nothing.
    for bad in [json!(0), json!(31), json!("fast"), json!(-1)] {
        let ack = o
            .command("set_inference_rate", json!({"rate_hz": bad}))
            .unwrap();
        assert!(!ack.is_success());
        assert!(ack.error.unwrap().contains("rate_hz"));
    }
    // A new oriond on the same state directory keeps the operator's rate and model.
    assert!(
        o.command("set_model_size", json!({"size": "m"}))
            .unwrap()
            .is_success()
    );
    o.signal(Signal::SIGTERM).unwrap();
    o.spawn().unwrap();
    let s = o.wait_all_running(START_TIMEOUT).unwrap();
    assert_eq!(s["desired"]["rate_hz"], 2.5);
    assert_eq!(s["desired"]["model_size"], "m");
    let s = o
        .wait_for("detector status", Duration::from_secs(10), |s| {
            s["detector"]["model"] == "m"
        })
        .unwrap();
    assert_eq!(s["stream"]["rate_hz"], 2.5);
}

#[test]
fn a_model_that_fails_to_load_is_rolled_back() {
    let (instance, dir) = Oriond::scratch().unwrap();
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let synthetic = orion_tests::fixtures::fixture("models/synthetic").unwrap();
    std::fs::copy(
        synthetic.join("yolo11n_synthetic_640.onnx"),
        models.join("yolo11n_synthetic_640.onnx"),
    )
    .unwrap();
    std::fs::write(models.join("yolo11l_broken_640.onnx"), b"not a model").unwrap();
    let text = Oriond::config_text(&instance, &dir, None, "")
        .unwrap()
        .replace(
            &synthetic.display().to_string(),
            &models.display().to_string(),
        );
    let o = Oriond::start_with(instance, dir, &text).unwrap();
    o.wait_all_running(START_TIMEOUT).unwrap();
    let ack = o.command("set_model_size", json!({"size": "l"})).unwrap();
    assert!(!ack.is_success());
    assert!(
        ack.error.as_deref().unwrap().contains("model l not loaded"),
        "{ack:?}"
    );
    let ack = o.command("set_model_size", json!({"size": "x"})).unwrap();
    assert!(
        ack.error
            .as_deref()
            .unwrap()
            .contains("no 640 model for size x"),
        "{ack:?}"
    );
    let s = o.status().unwrap();
    assert_eq!(s["desired"]["model_size"], "n");
    assert_eq!(s["detector"]["model"], "n");
}

#[test]
fn malformed_and_oversize_messages_get_errors_and_never_hurt_oriond() {
    let o = Oriond::start(None, "").unwrap();
    let exchange = |body: &[u8]| -> Value {
        let mut s = UnixStream::connect(&o.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        orion_protocol::wire::write_message(&mut s, body).unwrap();
        let reply = orion_protocol::wire::read_message(&mut s).unwrap().unwrap();
        serde_json::from_slice(&reply).unwrap()
    };
    for (body, expect) in [
        (&b"{not json"[..], "malformed"),
        (b"[1,2]", "JSON object"),
        (b"{\"command\":\"dance\"}", "unknown command"),
        (
            b"{\"command\":\"set_attention_rois\",\"params\":{\"rois\":[]}}",
            "1..=16",
        ),
        (
            b"{\"command\":\"set_model_size\",\"params\":{\"size\":7}}",
            "params.size",
        ),
        (
            b"{\"type\":\"hello\",\"name\":\"detector\",\"pid\":1}",
            "is not oriond's detector",
        ),
        (
            b"{\"command\":\"stop_process\",\"params\":{\"name\":\"sh\"}}",
            "no such process",
        ),
    ] {
        let ack = exchange(body);
        assert_eq!(ack["status"], "error", "{ack}");
        assert!(
            ack["error"].as_str().unwrap().contains(expect),
            "{expect}: {ack}"
        );
    }
    // A length over the limit: an error, then the connection closes.
    let mut s = UnixStream::connect(&o.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    let reply = orion_protocol::wire::read_message(&mut s).unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&reply).contains("over the"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "connection closed");
    // A peer that connects and vanishes mid-message.
    let mut s = UnixStream::connect(&o.socket).unwrap();
    s.write_all(&[0, 0, 1]).unwrap();
    drop(s);
    // Still there, children untouched (and working).
    o.wait_working(START_TIMEOUT).unwrap();
    let (code, out, _) = o.ctl(&["status"]).unwrap();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_configs_are_refused_with_the_key_and_range() {
    let (instance, dir) = Oriond::scratch().unwrap();
    let oriond = orion_tests::bins::locate("oriond").unwrap();
    for (extra, expect) in [
        ("[ring]\nslots = 1000\n", "ring.slots: must be in 2..=64"),
        ("[auto_focus]\nstrategy = \"zoom\"\n", "auto_focus.strategy"),
        ("[ring]\nbogus = 1\n", "unknown field `bogus`"),
    ] {
        let text = Oriond::config_text(&instance, &dir, None, extra).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        for args in [vec!["--check-config"], vec![]] {
            let out = std::process::Command::new(&oriond)
                .arg("--config")
                .arg(&file)
                .args(&args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
            assert!(err.contains(expect), "{extra}: {err}");
        }
    }
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        Oriond::config_text(&instance, &dir, None, "").unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(&oriond)
        .arg("--config")
        .arg(&good)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.join("run").exists(),
        "--check-config started something"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sighup_applies_an_edited_config_and_keeps_running_on_a_bad_one() {
    let o = Oriond::start(None, "").unwrap();
    let oriond = Pid::from_raw(o.pid() as i32);
    let detector = o.child_pid("detector").unwrap();
    let capture = o.child_pid("capture").unwrap();
    // A broken edit: logged, nothing changes.
    let good = std::fs::read_to_string(&o.config).unwrap();
    std::fs::write(&o.config, good.replace("rate_hz = 5", "rate_hz = 500")).unwrap();
    kill(oriond, Signal::SIGHUP).unwrap();
    let t = Instant::now();
    while !o.stderr_text().contains("config not reloaded") {
        assert!(t.elapsed() < Duration::from_secs(10), "no error logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(o.child_pid("capture").unwrap(), capture);
    // A good edit of the stream rate: capture restarts at the new rate, the detector stays.
    std::fs::write(&o.config, good.replace("rate_hz = 5", "rate_hz = 4")).unwrap();
    kill(oriond, Signal::SIGHUP).unwrap();
    let s = o
        .wait_for("capture at 4 Hz", Duration::from_secs(20), |s| {
            s["stream"]["rate_hz"] == 4.0
                && s["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["state"] == "RUNNING")
        })
        .unwrap();
    assert_eq!(s["desired"]["rate_hz"], 4.0);
    assert_ne!(o.child_pid("capture").unwrap(), capture);
    assert_eq!(o.child_pid("detector").unwrap(), detector);
    // A key that shapes the ring cannot change live: refused with the reason.
    std::fs::write(&o.config, good.replace("width = 320", "width = 640")).unwrap();
    let ack = o.command("reload_config", json!({})).unwrap();
    assert!(
        ack.error
            .as_deref()
            .unwrap_or("")
            .contains("stream.width cannot change"),
        "{ack:?}"
    );
}

#[test]
fn a_stop_after_quick_rate_changes_stays_stopped() {
    let o = Oriond::start(None, "").unwrap();
    o.wait_working(START_TIMEOUT).unwrap();
    // Two rate changes in flight (each replaces the capture make-before-break), then a stop.
    let rates: Vec<_> = [3.0, 4.0]
        .into_iter()
        .map(|hz| {
            let socket = o.socket.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let body = json!({"command": "set_inference_rate", "params": {"rate_hz": hz}});
                orion_protocol::wire::write_message(&mut s, body.to_string().as_bytes()).unwrap();
                orion_protocol::wire::read_message(&mut s).unwrap()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    let stop = o
        .command("stop_process", json!({"name": "capture"}))
        .unwrap();
    assert!(stop.into_result().is_ok());
    for r in rates {
        let _ = r.join().unwrap();
    }
    // Stopped, and it stays stopped: no successor takes its place afterwards.
    std::thread::sleep(Duration::from_secs(3));
    let capture = o.process("capture").unwrap();
    assert_eq!(capture["state"], "STOPPED", "{capture}");
    let alive: Vec<u32> = orion_tests::oriond::children_named(o.pid(), "orion-capture");
    assert!(
        alive.is_empty(),
        "capture processes still running: {alive:?}"
    );
}

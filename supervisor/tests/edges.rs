//! oriond at its edges: more connections than it takes (children keep slots of their own), commands racing a shutdown, a
//! flood of commands beside a crash. Real oriond, real children, real signals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::oriond::{Oriond, START_TIMEOUT, now_unix_us};
use serde_json::{Value, json};

/// oriond's limit of client connections (`supervisor/src/ipc.rs`); its children's are apart.
const MAX_CONNECTIONS: usize = 64;

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// What arrives on `s` within `wait`: a message, the end of the stream, or nothing.
enum Heard {
    Message(Value),
    Closed,
    Nothing,
}

fn listen(s: &mut UnixStream, wait: Duration) -> Heard {
    s.set_read_timeout(Some(wait)).unwrap();
    match orion_protocol::wire::read_message(s) {
        Ok(Some(body)) => Heard::Message(serde_json::from_slice(&body).unwrap()),
        Ok(None) => Heard::Closed,
        Err(_) => Heard::Nothing,
    }
}

#[test]
fn connections_over_the_limit_are_closed_unread_and_descriptors_stay_bounded() {
    let o = Oriond::start(None, "").unwrap();
    // Steady state: the standby detector (its pipes, its connection) is up.
    o.wait_standby_ready(START_TIMEOUT).unwrap();
    let capture = o.child_pid("capture").unwrap();
    let before = fds(o.pid());
    // Idle connections until oriond refuses one.
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..MAX_CONNECTIONS + 8 {
        let mut s = UnixStream::connect(&o.socket).unwrap();
        match listen(&mut s, Duration::from_millis(150)) {
            Heard::Nothing => held.push(s),
            Heard::Message(m) => {
                refused = Some(m);
                break;
            }
            Heard::Closed => panic!("closed without a word"),
        }
    }
    let refused = refused.expect("oriond took more than its limit");
    assert_eq!(refused["error_kind"], "busy", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("at most"),
        "{refused}"
    );
    // The children's connections do not take clients' slots, nor clients theirs.
    assert_eq!(held.len(), MAX_CONNECTIONS);
    let at_limit = fds(o.pid());
    assert!(
        at_limit <= before + MAX_CONNECTIONS,
        "{before} -> {at_limit} descriptors"
    );
    // More over the limit, each with a command at once: answered "busy", closed, and the
    // command never carried out.
    for _ in 0..16 {
        let mut s = UnixStream::connect(&o.socket).unwrap();
        let _ = orion_protocol::wire::write_message(
            &mut s,
            json!({"command": "pause_inference", "request_id": "over"})
                .to_string()
                .as_bytes(),
        );
        match listen(&mut s, Duration::from_secs(5)) {
            Heard::Message(m) => {
                assert_eq!(m["error_kind"], "busy", "{m}");
                assert_eq!(m["request_id"], Value::Null, "the command was read: {m}");
            }
            Heard::Closed => {}
            Heard::Nothing => panic!("an extra connection was kept open"),
        }
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(s.read_to_end(&mut rest).unwrap_or(0), 0, "not closed");
        // oriond shuts the connection down, then closes it: a moment apart.
        let closing = Instant::now() + Duration::from_secs(1);
        let mut now = fds(o.pid());
        while now > at_limit && Instant::now() < closing {
            std::thread::sleep(Duration::from_millis(10));
            now = fds(o.pid());
        }
        assert!(
            now <= at_limit,
            "a refused connection kept a descriptor: {now} > {at_limit}; {}",
            std::fs::read_dir(format!("/proc/{}/fd", o.pid()))
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    // A child restarted while every client slot is taken still gets its connection: the
    // capture comes back RUNNING at its first try.
    let running = |log: &str| {
        log.lines()
            .filter(|l| l.contains("name=capture") && l.contains("state=\"RUNNING\""))
            .count()
    };
    let ran = running(&o.stderr_text());
    kill(Pid::from_raw(capture as i32), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(&o.stderr_text()) == ran {
        assert!(
            Instant::now() < deadline,
            "the capture did not come back while clients held every slot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Clients' refusals say max=64 (their log lines may still be arriving); a child's
    // would say max=16.
    let children_refused = o
        .stderr_text()
        .lines()
        .filter(|l| l.contains("too many connections") && l.contains("max=16"))
        .count();
    assert_eq!(
        children_refused, 0,
        "the restarted capture was refused a connection"
    );
    drop(held);
    let status = o.status().unwrap();
    let capture_status = status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "capture")
        .unwrap()
        .clone();
    assert_eq!(capture_status["restarts"], 1, "{capture_status}");
    // Room again: the pauses were never applied, and the descriptors come back.
    let status = o
        .wait_for("a free connection", Duration::from_secs(10), |_| true)
        .unwrap();
    assert_eq!(status["desired"]["paused"], false, "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(o.pid()) > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fds(o.pid()) <= before, "{before} -> {}", fds(o.pid()));
}

#[test]
fn shutdown_is_final_even_with_restarts_and_reloads_racing_it() {
    // stopwaitsecs = 3 in the test config.
    let limit = Duration::from_secs(3 + 1);
    let mut refused_after = 0;
    for round in 0..4 {
        let mut o = Oriond::start(None, "").unwrap();
        let socket = o.socket.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Three clients keep asking for starts, restarts and reloads throughout.
        let racers: Vec<_> = [
            json!({"command": "restart_process", "params": {"name": "capture"}}),
            json!({"command": "start_process", "params": {"name": "detector"}}),
            json!({"command": "reload_config"}),
        ]
        .into_iter()
        .map(|body| {
            let (socket, stop) = (socket.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        break;
                    };
                    let sent = Instant::now();
                    if orion_protocol::wire::write_message(&mut s, body.to_string().as_bytes())
                        .is_err()
                    {
                        break;
                    }
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    match orion_protocol::wire::read_message(&mut s) {
                        Ok(Some(b)) => {
                            answers.push((sent, serde_json::from_slice::<Value>(&b).unwrap()))
                        }
                        _ => break,
                    }
                }
                answers
            })
        })
        .collect();
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        let asked = Instant::now();
        let ack = o.command("shutdown", json!({})).unwrap();
        assert!(ack.is_success(), "{ack:?}");
        let acked = Instant::now();
        let exit = o
            .wait_exit(limit)
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", o.stderr_text()));
        assert_eq!(exit.code(), Some(0), "round {round}: {exit:?}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for racer in racers {
            for (sent, answer) in racer.join().unwrap() {
                // Asked after the shutdown was acknowledged: refused, never carried out.
                if sent > acked {
                    refused_after += 1;
                    assert_eq!(answer["status"], "error", "round {round}: {answer}");
                    assert!(
                        matches!(
                            answer["error_kind"].as_str(),
                            Some("shutting_down" | "failed")
                        ),
                        "round {round}: {answer}"
                    );
                }
            }
        }
        assert!(asked.elapsed() < limit + Duration::from_secs(1));
    }
    eprintln!("{refused_after} requests made after the shutdown ack, all refused");
    assert!(refused_after > 0, "nothing raced the shutdown");
}

#[test]
fn a_flood_of_commands_does_not_delay_crash_detection() {
    let o = Oriond::start(None, "").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 1000 changes to the desired state a second, pipelined on one connection; every one
    // acknowledged (and saved in the background).
    let conn = UnixStream::connect(&o.socket).unwrap();
    let mut reader = conn.try_clone().unwrap();
    let writer = {
        let (stop, mut conn) = (stop.clone(), conn);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let due = started + Duration::from_micros(1000 * sent);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let x = (sent % 50) as f64 / 100.0;
                let body = json!({"command": "set_attention_rois", "params": {"rois": [{"x": x, "y": 0.1, "width": 0.3, "height": 0.3}]}});
                orion_protocol::wire::write_message(&mut conn, body.to_string().as_bytes())
                    .unwrap();
                sent += 1;
            }
            (sent, started.elapsed())
        })
    };
    let acks = std::thread::spawn(move || {
        reader
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut ok = 0u64;
        while let Ok(Some(reply)) = orion_protocol::wire::read_message(&mut reader) {
            let v: Value = serde_json::from_slice(&reply).unwrap();
            assert_eq!(v["status"], "success", "{v}");
            ok += 1;
        }
        ok
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut detect = Vec::new();
    for _ in 0..5 {
        let p = o.process("capture").unwrap();
        let pid = p["pid"].as_u64().unwrap() as u32;
        let killed_us = now_unix_us();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        // When the supervisor acted on the exit (its own stamp), not when we polled.
        let status = o
            .wait_for("capture's exit handled", Duration::from_secs(10), |s| {
                s["processes"].as_array().unwrap().iter().any(|p| {
                    p["name"] == "capture"
                        && p["last_exit"]["at_unix_us"]
                            .as_u64()
                            .is_some_and(|t| t >= killed_us)
                })
            })
            .unwrap();
        let p = status["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "capture")
            .unwrap();
        let noticed = p["last_exit"]["at_unix_us"].as_u64().unwrap();
        detect.push(Duration::from_micros(noticed - killed_us));
        o.wait_state("capture", "RUNNING", Duration::from_secs(20))
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, took) = writer.join().unwrap();
    let rate = sent as f64 / took.as_secs_f64();
    let answered = acks.join().unwrap();
    eprintln!(
        "flood {rate:.0} commands/s, {answered} of {sent} acked; crash handled after {detect:?}"
    );
    assert!(rate > 900.0, "the flood reached only {rate:.0} commands/s");
    assert_eq!(answered, sent, "every change answered");
    // Generous for a loaded 2-core box; with fsyncs in the loop each waited behind them.
    let worst = detect.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(100),
        "crash handled after {worst:?}"
    );
    // The last change is saved (at most about a second later) and whole.
    std::thread::sleep(Duration::from_millis(1500));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(state_file(&o)).unwrap()).unwrap();
    let last_x = ((sent - 1) % 50) as f64 / 100.0;
    assert_eq!(saved["desired"]["rois"][0]["x"], json!(last_x), "{saved}");
}

/// The desired-state file of `o`'s instance.
fn state_file(o: &Oriond) -> std::path::PathBuf {
    let dir = o.dir.join("state");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("desired-") && n.ends_with(".json"))
        })
        .unwrap_or_else(|| panic!("no state file in {}", dir.display()))
}

#[test]
fn a_client_let_go_for_not_reading_has_nothing_it_still_sent_carried_out() {
    let o = Oriond::start(None, "").unwrap();
    // Thousands of status questions, never read, then a pause: oriond lets the client go
    // when its answers no longer fit (an outbox of 1024), and what it had already read from
    // that client is dropped, the pause included.
    let mut s = UnixStream::connect(&o.socket).unwrap();
    let mut burst = Vec::new();
    for i in 0..3000 {
        let body = json!({"command": "get_status", "request_id": format!("q{i}")}).to_string();
        burst.extend_from_slice(&(body.len() as u32).to_be_bytes());
        burst.extend_from_slice(body.as_bytes());
    }
    let pause = json!({"command": "pause_inference", "request_id": "last"}).to_string();
    burst.extend_from_slice(&(pause.len() as u32).to_be_bytes());
    burst.extend_from_slice(pause.as_bytes());
    let _ = std::io::Write::write_all(&mut s, &burst);
    // Not read: oriond lets the connection go.
    let status = o
        .wait_for("the client let go", Duration::from_secs(30), |s| {
            s["oriond"]["authority"]["from_connections_let_go"]
                .as_u64()
                .is_some_and(|n| n > 0)
        })
        .unwrap();
    assert_eq!(
        status["desired"]["paused"], false,
        "the pause was carried out"
    );
    let mut sink = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.read_to_end(&mut sink);
    let status = o.status().unwrap();
    assert_eq!(
        status["desired"]["paused"], false,
        "the pause was carried out"
    );
}

//! What systemd hears from oriond: READY, WATCHDOG, a STATUS line, RELOADING … READY
//! around a reload and STOPPING on its notify socket; and the journal, which oriond writes
//! itself — a real journald (the box's, or one started for the test), entries with real
//! priorities, the child each relayed line came from as a field, and one timestamp per line
//! (the journal's, none in the message).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::journal::Journald;
use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::Value;

fn field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or_default()
}

#[test]
fn oriond_writes_the_journal_with_real_priorities_and_a_field_per_child() {
    let journal = Journald::start().unwrap();
    // A camera nobody answers: the capture warns at every attempt, the others say info.
    let mut o = Oriond::start_without_camera().unwrap();
    o.signal(Signal::SIGTERM).unwrap();
    o.env = vec![("ORION_LOG".into(), "journal".into())];
    o.spawn().unwrap();
    o.wait_for("the stream down", Duration::from_secs(30), |s| {
        s["stream"]["state"] == "reconnecting"
    })
    .unwrap();

    let pid = o.pid();
    let deadline = Instant::now() + START_TIMEOUT;
    let entries = loop {
        let entries = journal.entries_of(pid).unwrap();
        let warned = entries
            .iter()
            .any(|e| field(e, "ORION_CHILD") == "capture" && field(e, "PRIORITY") == "4");
        if warned {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "no capture warning in {entries:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let children: Vec<&str> = entries.iter().map(|e| field(e, "ORION_CHILD")).collect();
    assert!(children.contains(&"detector"), "{children:?}");
    // oriond's own lines carry no child; routine lines are priority 6 (info).
    assert!(
        entries
            .iter()
            .any(|e| field(e, "ORION_CHILD").is_empty() && field(e, "PRIORITY") == "6"),
        "{entries:#?}"
    );
    for e in entries
        .iter()
        .filter(|e| !field(e, "ORION_CHILD").is_empty())
    {
        let message = field(e, "MESSAGE");
        let child = field(e, "ORION_CHILD");
        assert!(message.starts_with(&format!("{child}: ")), "{message}");
        // One timestamp: the journal's. The relayed text starts with its target or text.
        let first = message[child.len() + 2..]
            .split(' ')
            .next()
            .unwrap_or_default();
        let stamped = first.len() >= 20 && first.starts_with("20") && first.contains('T');
        assert!(!stamped, "a second timestamp in {message:?}");
        assert!(["3", "4", "6", "7"].contains(&field(e, "PRIORITY")), "{e}");
    }
    drop(o);
    drop(journal);
}

#[test]
fn systemd_hears_ready_watchdog_status_reloading_and_stopping() {
    let (instance, dir) = Oriond::scratch().unwrap();
    let text = Oriond::config_text(&instance, &dir, None, "").unwrap();
    let notify = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // Start through a config file written first, with systemd's variables set.
    std::fs::write(dir.join("orion.toml"), &text).unwrap();
    let mut o = Oriond::start_with(instance, dir.clone(), &text).unwrap();
    // start_with already spawned once without the variables: restart with them.
    o.signal(Signal::SIGTERM).unwrap();
    o.env = vec![
        ("NOTIFY_SOCKET".into(), notify.display().to_string()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    o.spawn().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    let t = Instant::now();
    while !(seen.contains("READY=1")
        && seen.contains("WATCHDOG=1")
        && seen.contains("STATUS=camera"))
    {
        assert!(t.elapsed() < START_TIMEOUT, "heard only {seen:?}");
        let n = sock.recv(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    // `systemctl status` shows one line of what matters.
    let status = seen.lines().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(
        status.contains("rate ") && status.contains("model n"),
        "{status}"
    );
    // A reload: RELOADING=1 with the monotonic time, then READY=1 again.
    let from = seen.len();
    kill(Pid::from_raw(o.pid() as i32), Signal::SIGHUP).unwrap();
    let t = Instant::now();
    loop {
        let after = &seen[from..];
        let reloading = after.find("RELOADING=1");
        if reloading.is_some_and(|r| after[r..].contains("READY=1")) {
            assert!(after.contains("MONOTONIC_USEC="), "{after:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "heard only {after:?}"
        );
        let n = sock.recv(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    o.signal(Signal::SIGTERM).unwrap();
    let t = Instant::now();
    while !seen.contains("STOPPING=1") {
        assert!(t.elapsed() < Duration::from_secs(10), "heard only {seen:?}");
        let n = sock.recv(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

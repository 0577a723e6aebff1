//! oriond under systemd writes the journal itself: a real journald (the box's, or one
//! started for the test), entries with real priorities, the child each relayed line came
//! from as a field, and one timestamp per line (the journal's, none in the message).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
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
    let (instance, dir) = Oriond::scratch().unwrap();
    let text = Oriond::config_text(&instance, &dir, None, "")
        .unwrap()
        .replace(
            "source = \"test://ball\"",
            "source = \"rtsp://127.0.0.1:9/nothing\"",
        );
    let mut o = Oriond::start_with(instance, dir, &text).unwrap();
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

//! orionctl against a real oriond: supervisorctl's verbs and exit codes, and what it says
//! when every process runs but nothing is detected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::Value;

#[test]
fn orionctl_says_when_everything_runs_but_nothing_is_detected() {
    // A camera nobody answers: capture runs (RUNNING), its stream does not.
    let (instance, dir) = Oriond::scratch().unwrap();
    let text = Oriond::config_text(&instance, &dir, None, "")
        .unwrap()
        .replace(
            "source = \"test://ball\"",
            "source = \"rtsp://127.0.0.1:9/nothing\"",
        );
    let o = Oriond::start_with(instance, dir, &text).unwrap();
    o.wait_all_running(START_TIMEOUT).unwrap();
    o.wait_for("the stream down", Duration::from_secs(20), |s| {
        s["stream"]["state"] == "reconnecting"
    })
    .unwrap();
    let (code, out, _) = o.ctl(&["status"]).unwrap();
    assert_eq!(code, 5, "{out}");
    let line = out.lines().find(|l| l.starts_with("capture")).unwrap();
    // (Between attempts it says when the next one comes; while one runs, "connecting".)
    assert!(
        line.contains("RUNNING")
            && (line.contains("; camera reconnecting (retry in")
                || line.contains("; camera connecting")),
        "{line}"
    );
    // Paused: the detector says so too; and a process down still wins (exit 3).
    let (code, out, err) = o.ctl(&["pause"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = o.ctl(&["status", "detector"]).unwrap();
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("detector paused"), "{out}");
    let (code, out, _) = o.ctl(&["stop", "detector"]).unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(o.ctl(&["status"]).unwrap().0, 3);
}

#[test]
fn orionctl_speaks_like_supervisorctl() {
    let o = Oriond::start(None, "").unwrap();
    // Frames flowing and inferred: then nothing is wrong (exit 0).
    o.wait_working(START_TIMEOUT).unwrap();
    let (code, out, _) = o.ctl(&["status"]).unwrap();
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("detector")).unwrap();
    assert!(
        line.contains("RUNNING") && line.contains("pid ") && line.contains("uptime 0:00:"),
        "{line}"
    );
    assert_eq!(o.ctl(&["status", "nosuch"]).unwrap().0, 4);
    let (code, out, _) = o.ctl(&["--json", "status", "capture"]).unwrap();
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["processes"][0]["state"], "RUNNING");
    assert_eq!(o.ctl(&["stop", "capture"]).unwrap().0, 0);
    let (code, out, _) = o.ctl(&["status", "capture"]).unwrap();
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("STOPPED"));
    assert_eq!(o.ctl(&["start", "capture"]).unwrap().0, 0);
    let (code, out, _) = o.ctl(&["status", "capture"]).unwrap();
    assert!(out.contains("RUNNING"), "{out}");
    // RUNNING at once; frames a moment later (until then: exit 5, "camera connecting").
    assert!(
        code == 0 || (code == 5 && out.contains("camera")),
        "{code} {out}"
    );
    o.wait_for("stream running", START_TIMEOUT, |s| {
        s["stream"]["state"] == "running"
    })
    .unwrap();
    assert_eq!(o.ctl(&["status", "capture"]).unwrap().0, 0);
    let (code, out, _) = o.ctl(&["pid"]).unwrap();
    assert_eq!((code, out.trim().parse::<u32>().unwrap()), (0, o.pid()));
    let (code, out, _) = o.ctl(&["tail", "capture"]).unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("capture starting"), "{out}");
    let (code, out, err) = o.ctl(&["rois", "set", "0.1,0.1,0.5,0.5"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = o.ctl(&["rois", "get"]).unwrap();
    assert!(out.contains("0.5"), "{out}");
    let (code, _, err) = o.ctl(&["rate", "99"]).unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("rate_hz"), "{err}");
    let (code, out, err) = o.ctl(&["restart", "detector"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, _) = o.ctl(&["shutdown"]).unwrap();
    assert_eq!(code, 0);
    let t = Instant::now();
    while o.socket.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "oriond did not shut down"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _, err) = o.ctl(&["status"]).unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("oriond is not running"), "{err}");
}

/// The `orion>` prompt on a real terminal (a pty): `help`, Tab completing a verb and a
/// process name, the up arrow bringing the last line back, history kept on quit.
#[test]
fn the_prompt_completes_remembers_and_helps() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};

    let o = Oriond::start(None, "").unwrap();
    let home = o.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orionctl"))
        .arg("--socket")
        .arg(&o.socket)
        .env("HOME", &home)
        .env("TERM", "xterm")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let screen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let screen = screen.clone();
        let mut master = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once orionctl exits and the terminal closes.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |what: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = screen.lock().unwrap().clone();
            if text.matches(what).count() >= count {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} ×{count} in {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("orion> ", 1);
    master.write_all(b"he\t\r").unwrap();
    wait_for("Tab completes verbs and process names", 1);
    // "statu" + Tab = "status", " capt" + Tab = " capture".
    master.write_all(b"statu\t capt\t\r").unwrap();
    let text = wait_for("uptime 0:", 1);
    assert!(text.contains("status capture"), "{text:?}");
    // The up arrow brings the line back.
    master.write_all(b"\x1b[A\r").unwrap();
    wait_for("uptime 0:", 2);
    master.write_all(b"quit\r").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    drop(master);
    reader.join().unwrap();
    let history = std::fs::read_to_string(home.join(".orionctl_history")).unwrap();
    assert!(history.contains("status capture"), "{history}");
}

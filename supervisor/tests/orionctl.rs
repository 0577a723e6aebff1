//! orionctl against a real oriond: supervisorctl's verbs and exit codes, and what it says
//! when every process runs but nothing is detected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::Value;

#[test]
fn orionctl_says_when_everything_runs_but_nothing_is_detected() {
    // A camera nobody answers: capture runs (RUNNING), its stream does not.
    let o = Oriond::start_without_camera().unwrap();
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

/// orionctl on a real terminal (a pty), its screen collected as it writes.
struct Terminal {
    child: std::process::Child,
    master: std::fs::File,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    fn start(o: &Oriond, home: &std::path::Path, args: &[&str]) -> Self {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let pty = nix::pty::openpty(None, None).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_orionctl"))
            .arg("--socket")
            .arg(&o.socket)
            .args(args)
            .env("HOME", home)
            .env("TERM", "xterm")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave))
            .spawn()
            .unwrap();
        let master = std::fs::File::from(pty.master);
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
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
        Self {
            child,
            master,
            screen,
            reader: Some(reader),
        }
    }

    /// The screen once `what` is on it `count` times.
    fn wait_for(&self, what: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.screen.lock().unwrap().clone();
            if text.matches(what).count() >= count {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} ×{count} in {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_in(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.master.write_all(keys).unwrap();
    }

    /// Waits for orionctl to exit; its exit status and the whole screen.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        drop(self.master);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let text = self.screen.lock().unwrap().clone();
        (status, text)
    }
}

/// The `orion>` prompt on a real terminal (a pty): `help`, Tab completing a verb and a
/// process name, the up arrow bringing the last line back, history kept on quit.
#[test]
fn the_prompt_completes_remembers_and_helps() {
    let o = Oriond::start(None, "").unwrap();
    let home = o.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut t = Terminal::start(&o, &home, &[]);
    t.wait_for("orion> ", 1);
    t.type_in(b"he\t\r");
    t.wait_for("Tab completes verbs and process names", 1);
    // "statu" + Tab = "status", " capt" + Tab = " capture".
    t.type_in(b"statu\t capt\t\r");
    let text = t.wait_for("uptime 0:", 1);
    assert!(text.contains("status capture"), "{text:?}");
    // The up arrow brings the line back.
    t.type_in(b"\x1b[A\r");
    t.wait_for("uptime 0:", 2);
    t.type_in(b"quit\r");
    let (status, _) = t.finish();
    assert!(status.success(), "{status}");
    let history = std::fs::read_to_string(home.join(".orionctl_history")).unwrap();
    assert!(history.contains("status capture"), "{history}");
}

/// `orionctl model` and `orionctl rate` without an argument on a terminal: the choices with
/// what this box measured, a confirmation, the change and its ack. Without a terminal the
/// argument is required, as before.
#[test]
fn model_and_rate_without_an_argument_offer_the_measured_choices() {
    let o = Oriond::start(None, "").unwrap();
    let home = o.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Results have been measured for the running model (n; at 320×240 frames it infers
    // with its 320 input).
    let deadline = Instant::now() + Duration::from_secs(60);
    while o.status().unwrap()["measured"]["inference_ms"]["n"]["320"].is_null() {
        assert!(Instant::now() < deadline, "no inference time measured");
        std::thread::sleep(Duration::from_millis(200));
    }
    for (verb, arg) in [("model", "SIZE"), ("rate", "HZ")] {
        let (code, _, err) = o.ctl(&[verb]).unwrap();
        assert_eq!(code, 2, "{verb} without a terminal: {err}");
        assert!(err.contains(&format!("{arg} is required")), "{err}");
    }

    let mut t = Terminal::start(&o, &home, &["model"]);
    let text = t.wait_for("Size [", 1);
    // The synthetic fixtures hold every size at 640 and 320; n has run here.
    assert!(text.contains("Size [n/s/m/l/x] (Enter: keep n)"), "{text}");
    let n_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("n  "))
        .unwrap();
    assert!(
        n_line.contains("inference 320: ") && n_line.contains("← now"),
        "{n_line}"
    );
    let s_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("s  "))
        .unwrap();
    assert!(s_line.contains("not measured on this box yet"), "{s_line}");
    t.type_in(b"s\r");
    t.wait_for("Switch the model to s?", 1);
    t.type_in(b"y\r");
    let (status, text) = t.finish();
    assert!(status.success(), "{status}: {text}");
    assert!(text.contains("set_model_size: ok"), "{text}");
    assert_eq!(o.status().unwrap()["desired"]["model_size"], "s");

    // A rate change, then the guide names the interruption it measured.
    let mut t = Terminal::start(&o, &home, &["rate"]);
    let text = t.wait_for("Rate in Hz (Enter: keep 5)", 1);
    assert!(
        text.contains("No capture switch measured on this box yet"),
        "{text}"
    );
    t.type_in(b"2\r");
    t.wait_for("Set the inference rate to 2 Hz?", 1);
    t.type_in(b"y\r");
    let (status, text) = t.finish();
    assert!(
        status.success() && text.contains("set_inference_rate: ok"),
        "{text}"
    );
    assert_eq!(o.status().unwrap()["desired"]["rate_hz"], 2.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while o.status().unwrap()["measured"]["capture_switch_gap_ms"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the switch's gap was not measured"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut t = Terminal::start(&o, &home, &["rate"]);
    let text = t.wait_for("Rate in Hz (Enter: keep 2)", 1);
    assert!(
        text.contains("Last capture switch measured here: results paused"),
        "{text}"
    );
    // Enter keeps the rate: nothing is sent.
    t.type_in(b"\r");
    let (status, text) = t.finish();
    assert!(status.success() && text.contains("unchanged"), "{text}");
}

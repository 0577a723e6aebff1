//! The Python worker process and its protocol (detector-bridge/README.md): every message is a
//! 4-byte big-endian length and a MsgPack map with a `type` key. Replies are read on a
//! thread and handed to a callback as [`WorkerEvent`]s; the caller tags them with the
//! worker's generation, so replies of a worker that was replaced are recognised. This
//! module knows nothing of the bridge.

use std::io::{BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result, bail};
use command_fds::{CommandFdExt, FdMapping};
use serde::{Deserialize, Serialize};

use orion_config::models::ModelFiles;

/// Largest reply accepted from the worker (a result has at most 100 boxes).
const MAX_REPLY: usize = 4 << 20;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Infer {
        id: u64,
        slot: usize,
        imgsz: u32,
        frame_seq: u64,
    },
    LoadModel {
        id: u64,
        size: String,
        path_640: String,
        path_320: Option<String>,
    },
    Ping {
        id: u64,
    },
    /// A standby detector took over: its worker (started with [`Start::Deferred`]) loads
    /// its model now, before the first frame arrives (answered with a pong).
    Serve {
        id: u64,
    },
}

/// How a worker starts (docs/adr/0009-lean-stand-ins.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Serving: loads and warms up every input size of its model.
    Serving,
    /// The detector's spare: low CPU priority until its first request; loads lean (the
    /// 640 session without a warm-up run, the 320 session on first use).
    Spare,
    /// A standby detector's worker: low priority, and loads nothing until told to serve.
    Deferred,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerTiming {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub postprocess_ms: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Ready {
        pid: u32,
        size: String,
        sizes: Vec<u32>,
        names: Vec<String>,
    },
    Result {
        id: u64,
        imgsz: u32,
        model_size: String,
        boxes: Vec<f32>,
        scores: Vec<f32>,
        classes: Vec<String>,
        timing: WorkerTiming,
    },
    ModelLoaded {
        id: u64,
        size: String,
        sizes: Vec<u32>,
        load_ms: f64,
    },
    Error {
        id: Option<u64>,
        kind: String,
        message: String,
    },
    Pong {
        id: u64,
    },
}

/// The worker's descriptor of the tensor buffer.
const TENSORS_FD: i32 = 3;

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub python: PathBuf,
    /// Directory holding the `orion_worker` package.
    pub package_dir: PathBuf,
    pub threads: u32,
    pub classes: Vec<String>,
    pub confidence: f32,
    pub iou: f32,
}

/// What the worker's output brings.
pub enum WorkerEvent {
    /// A reply (an error if it could not be decoded).
    Reply(Result<Reply>),
    /// The output ended: the worker exited or broke the protocol.
    Gone(String),
}

pub struct Worker {
    child: Child,
    stdin: ChildStdin,
}

impl Worker {
    /// Starts a worker with `models` as its initial model; its replies (starting with
    /// `ready`, or an `error` if the model does not load) go to `on_event` (on the reader
    /// thread; it returns false to stop reading). A stand-in ([`Start::Spare`],
    /// [`Start::Deferred`]) runs at a low CPU priority until its first inference request
    /// (`--spare`): its start and loads must not slow the worker serving frames.
    pub fn spawn(
        cfg: &WorkerConfig,
        models: &ModelFiles,
        tensors: OwnedFd,
        start: Start,
        on_event: impl FnMut(WorkerEvent) -> bool + Send + 'static,
    ) -> Result<Self> {
        let mut cmd = Command::new(&cfg.python);
        // The tensor buffer (read-only) at a fixed descriptor number; nothing names it.
        cmd.fd_mappings(vec![FdMapping {
            parent_fd: tensors,
            child_fd: TENSORS_FD,
        }])
        .context("pass the tensor buffer to the worker")?;
        // `-P`: the working directory is not put first on sys.path (nothing there can
        // shadow numpy or the worker); and the working directory is `/` anyway.
        cmd.current_dir("/");
        cmd.args([
            "-P",
            "-m",
            "orion_worker",
            "--tensors-fd",
            &TENSORS_FD.to_string(),
            "--size",
            &models.size.to_string(),
        ])
        .arg("--model-640")
        .arg(&models.path_640)
        .args([
            "--threads",
            &cfg.threads.to_string(),
            "--classes",
            &cfg.classes.join(","),
        ])
        .args([
            "--confidence",
            &cfg.confidence.to_string(),
            "--iou",
            &cfg.iou.to_string(),
        ])
        .env("PYTHONPATH", &cfg.package_dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(p320) = &models.path_320 {
            cmd.arg("--model-320").arg(p320);
        }
        match start {
            Start::Serving => {}
            Start::Spare => {
                cmd.arg("--spare");
            }
            Start::Deferred => {
                cmd.args(["--spare", "--defer-load"]);
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start the worker with {}", cfg.python.display()))?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        std::thread::Builder::new()
            .name("worker-replies".into())
            .spawn(move || read_replies(BufReader::new(stdout), on_event))
            .context("start the worker reader thread")?;
        Ok(Self { child, stdin })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every thread of the worker to niceness `nice` (a spare started at 19 raised to 10;
    /// lowering the niceness needs CAP_SYS_NICE or the unit's LimitNICE=+0).
    pub fn renice(&self, nice: i32) -> std::io::Result<()> {
        let pid = self.child.id();
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let tid = entry?.file_name().to_string_lossy().parse::<i32>().ok();
            if let Some(tid) = tid.and_then(rustix::process::Pid::from_raw) {
                match rustix::process::setpriority_process(Some(tid), nice) {
                    Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    pub fn send(&mut self, request: &Request) -> Result<()> {
        let body = rmp_serde::to_vec_named(request)?;
        let len = u32::try_from(body.len())?;
        self.stdin.write_all(&len.to_be_bytes())?;
        self.stdin.write_all(&body)?;
        self.stdin.flush()?;
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // No orphans: the worker also dies with us (PR_SET_PDEATHSIG), this is the normal path.
        let _ = self.child.kill();
        // Reaped on a thread of its own: the kernel takes tens of milliseconds to tear down
        // a worker's few hundred MB, and the bridge must not wait for that (after a model
        // swap the next frame goes to the new worker at this moment).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let reaper = std::thread::Builder::new()
            .name("reap-worker".into())
            .spawn(move || {
                let _ = nix::sys::wait::waitpid(pid, None);
            });
        match reaper {
            Ok(handle) => REAPERS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle),
            Err(_) => {
                let _ = self.child.wait();
            }
        }
    }
}

/// Reaper threads of workers that were stopped; joined before the bridge exits.
static REAPERS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits up to `within` for every stopped worker to be reaped. The bridge calls it last:
/// a worker still alive when the bridge exits is handed to whoever reaps orphans (oriond,
/// else PID 1, which in a container may never reap it and leaves a zombie of the orion
/// user behind). True when every one was reaped.
pub fn wait_for_stopped_workers(within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    let mut reapers = std::mem::take(&mut *REAPERS.lock().unwrap_or_else(|p| p.into_inner()));
    while std::time::Instant::now() < deadline {
        reapers.retain(|r| !r.is_finished());
        if reapers.is_empty() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    reapers.retain(|r| !r.is_finished());
    reapers.is_empty()
}

/// Hands over replies until the worker's output ends (reported as [`WorkerEvent::Gone`]).
fn read_replies(mut stdout: impl Read, mut on_event: impl FnMut(WorkerEvent) -> bool) {
    loop {
        match read_frame(&mut stdout) {
            Ok(body) => {
                let reply = rmp_serde::from_slice::<Reply>(&body)
                    .context("undecodable reply from the worker");
                if !on_event(WorkerEvent::Reply(reply)) {
                    return;
                }
            }
            Err(end) => {
                on_event(WorkerEvent::Gone(format!("{end:#}")));
                return;
            }
        }
    }
}

fn read_frame(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    if r.read_exact(&mut len).is_err() {
        bail!("worker closed its output");
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_REPLY {
        bail!("worker output closed: a reply of {len} bytes exceeds {MAX_REPLY}");
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(|_| anyhow::anyhow!("worker closed its output mid-reply"))?;
    Ok(body)
}

#[cfg(test)]
mod fuzz {
    //! The bridge's side of the worker protocol against arbitrary worker output: every
    //! stream ends in replies, decode errors and a `Gone` — never a panic, never an
    //! allocation past [`MAX_REPLY`]. `ORION_FUZZ_CASES` sets the inputs (default 2000).
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("ORION_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    /// MsgPack maps shaped like replies: a known or unknown `type`, fields of any type.
    fn reply_like() -> impl Strategy<Value = Vec<u8>> {
        use serde_json::Value;
        let value = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
            prop::collection::vec(any::<f32>(), 0..12).prop_map(Value::from),
            prop::collection::vec(".{0,4}", 0..4).prop_map(Value::from),
            Just(Value::Null),
        ];
        let key = prop::sample::select(vec![
            "id",
            "pid",
            "size",
            "sizes",
            "names",
            "imgsz",
            "model_size",
            "boxes",
            "scores",
            "classes",
            "timing",
            "kind",
            "message",
            "load_ms",
        ]);
        (
            prop::sample::select(vec![
                "ready",
                "result",
                "model_loaded",
                "error",
                "pong",
                "what",
            ]),
            prop::collection::vec((key, value), 0..10),
        )
            .prop_map(|(kind, fields)| {
                let mut map = serde_json::Map::new();
                map.insert("type".into(), Value::from(kind));
                for (k, v) in fields {
                    map.insert(k.into(), v);
                }
                rmp_serde::to_vec_named(&Value::Object(map)).unwrap()
            })
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn drain(stream: Vec<u8>) -> Vec<WorkerEvent> {
        let mut events = Vec::new();
        read_replies(&stream[..], |e| {
            events.push(e);
            true
        });
        events
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_output_ends_in_gone(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let events = drain(bytes);
            let gone = matches!(events.last(), Some(WorkerEvent::Gone(_)));
            prop_assert!(gone, "the stream did not end in Gone");
        }

        #[test]
        fn reply_shaped_messages_decode_or_are_refused(bodies in prop::collection::vec(reply_like(), 1..6)) {
            let stream: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
            let events = drain(stream);
            // One event per message, then the end of the stream.
            prop_assert_eq!(events.len(), bodies.len() + 1);
            for e in &events[..bodies.len()] {
                prop_assert!(matches!(e, WorkerEvent::Reply(_)), "one reply per message");
            }
        }
    }

    #[test]
    fn an_oversize_length_is_refused_before_allocating() {
        let events = drain(u32::MAX.to_be_bytes().to_vec());
        match &events[..] {
            [WorkerEvent::Gone(why)] => assert!(why.contains("exceeds"), "{why}"),
            _ => panic!("expected one Gone"),
        }
    }
}

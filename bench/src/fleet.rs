//! The fleet suite: what N rooms cost a broker and a backend, and what a dying broker node
//! costs them. Each room is a real `orion-control` process, fed over its oriond socket by a
//! replay of real detections (recorded first from a real room: the real model on real
//! footage) at 5 Hz instead of a camera and a model, so that hundreds fit on 2 cores. The
//! backend is an `orion-fleet` client subscribed to `care/#` at QoS 1.
//!
//! Per broker (`mosquitto`: one node; `rabbitmq`: a two-node cluster, session queues
//! mirrored) and per N:
//! - `fleet.group_last_ack_ms.{broker}.n{N}`: a `get_status` to a group holding every room →
//!   the last room's ack; p50 and p99 over `--commands` commands.
//! - `fleet.msgs_per_room_s.{broker}.n{N}` and `fleet.bytes_per_room_s…`: what the backend
//!   receives per room per second at 5 Hz (payload and topic bytes).
//! - `fleet.broker_cpu.{broker}.n{N}`: the broker's CPU (cores) over the same window.
//! - `fleet.failover_s.{broker}.n{N}`: a broker node is SIGKILLed (RabbitMQ: the node half
//!   the rooms are on; mosquitto, one node: restarted at once on its saved sessions, as
//!   systemd would) and a command is published at once to every room on a node that is up:
//!   the time from the kill until every room acked (and so is back), and `lost`, the
//!   commands never acked (target 0).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use orion_fleet::{Broker, Fleet, Target};
use orion_protocol::command::Ack;
use orion_protocol::message::{self, Frame, Message};
use orion_protocol::wire;
use orion_protocol::{DetectionMessage, status::Status};
use orion_tests::child::ChildGuard;
use orion_tests::mqtt::{Mosquitto, Watch};
use orion_tests::rabbitmq::RabbitCluster;
use orion_tests::system::{Spec, System};
use serde_json::{Value, json};

use crate::report;
use crate::stats::percentile;

#[derive(clap::Args)]
pub struct Options {
    /// Fleet sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [50usize, 200])]
    rooms: Vec<usize>,
    /// Brokers: mosquitto, rabbitmq.
    #[arg(long, value_delimiter = ',', default_values_t = ["mosquitto".to_string(), "rabbitmq".to_string()])]
    brokers: Vec<String>,
    /// Group commands per fleet size.
    #[arg(long, default_value_t = 30)]
    commands: usize,
    /// Seconds of traffic counted for the per-room rates.
    #[arg(long, default_value_t = 10.0)]
    window_s: f64,
}

/// Replayed per room per second, as a room at 5 Hz sends them.
const RATE_HZ: f64 = 5.0;
const GROUP: &str = "fleet";

pub fn run(opts: &Options) -> Result<()> {
    crate::supervisor::build_binaries(true)?;
    let recording = record()?;
    for broker in &opts.brokers {
        for &n in &opts.rooms {
            let mut nodes = Nodes::start(broker)?;
            measure(opts, &mut nodes, n, &recording)?;
        }
    }
    Ok(())
}

/// Real detections and a real status, from a real room.
struct Recording {
    detections: Vec<DetectionMessage>,
    status: Status,
}

fn record() -> Result<Recording> {
    let sys = System::start(Spec {
        rate_hz: RATE_HZ,
        ..Spec::default()
    })?;
    let topic = format!("care/inferences/{}/person_detection", sys.o.instance);
    let mut watch = Watch::start(sys.mqtt_port, &topic)?;
    watch.wait_count("recorded detections", Duration::from_secs(60), 0, 50, |s| {
        s.topic == topic
    })?;
    let detections: Vec<DetectionMessage> = watch
        .seen
        .iter()
        .filter_map(|s| serde_json::from_str(&s.payload).ok())
        .collect();
    let status: Status = serde_json::from_value(sys.o.status()?).context("oriond's status")?;
    anyhow::ensure!(detections.len() >= 50, "too few detections recorded");
    Ok(Recording { detections, status })
}

/// The broker nodes of one measurement: mosquitto as one node that persists its sessions
/// (`autosave_interval 1`) and is restarted at once when it dies, as systemd would; RabbitMQ
/// as a two-node cluster.
enum Nodes {
    Mosquitto(Mosquitto, PathBuf),
    Rabbit(RabbitCluster),
}

impl Nodes {
    fn start(kind: &str) -> Result<Self> {
        Ok(match kind {
            "mosquitto" => {
                let dir = std::env::temp_dir()
                    .join(format!("orion-fleet-mosquitto-{}", orion_tests::unique()));
                std::fs::create_dir_all(&dir)?;
                // mosquitto started as root saves as its own user.
                if nix::unistd::geteuid().is_root()
                    && let Ok(Some(user)) = nix::unistd::User::from_name("mosquitto")
                {
                    nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))?;
                }
                let conf = format!(
                    "allow_anonymous true\npersistence true\npersistence_location {}/\n\
                     autosave_interval 1\nmax_queued_messages 10000\n",
                    dir.display()
                );
                Nodes::Mosquitto(Mosquitto::start_conf(&conf)?, dir)
            }
            "rabbitmq" => Nodes::Rabbit(RabbitCluster::start(2)?),
            other => bail!("unknown broker {other:?} (mosquitto, rabbitmq)"),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Nodes::Mosquitto(..) => "mosquitto",
            Nodes::Rabbit(_) => "rabbitmq",
        }
    }

    fn ports(&self) -> Vec<u16> {
        match self {
            Nodes::Mosquitto(m, _) => vec![m.port],
            Nodes::Rabbit(c) => c.nodes.iter().map(|n| n.mqtt_port).collect(),
        }
    }

    /// The broker's processes (for their CPU time).
    fn pids(&self) -> Vec<u32> {
        match self {
            Nodes::Mosquitto(m, _) => m.pid().into_iter().collect(),
            Nodes::Rabbit(c) => (0..c.nodes.len())
                .filter_map(|i| c.vm_pid(i).ok())
                .map(|p| p.as_raw() as u32)
                .collect(),
        }
    }

    /// CPU seconds the broker's processes used so far.
    fn cpu_s(&self) -> f64 {
        self.pids().iter().map(|p| cpu_seconds(*p)).sum()
    }

    /// The node that outlives [`Nodes::kill_one`] (the last).
    fn surviving_port(&self) -> u16 {
        self.ports().last().copied().unwrap_or_default()
    }

    /// RabbitMQ 3.10 speaks MQTT 3.1.1 only.
    fn version(&self) -> &'static str {
        match self {
            Nodes::Mosquitto(..) => "5",
            Nodes::Rabbit(_) => "3.1.1",
        }
    }

    /// SIGKILLs the first node: RabbitMQ's other node carries on; mosquitto is started
    /// again on its port and its saved sessions.
    fn kill_one(&mut self) -> Result<()> {
        match self {
            Nodes::Mosquitto(m, _) => {
                m.kill()?;
                m.restart()
            }
            Nodes::Rabbit(c) => c.kill_node(0),
        }
    }
}

/// utime + stime of a process, in seconds (`/proc/PID/stat`, clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces), from field 3 on.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if let Nodes::Mosquitto(m, dir) = self {
            let _ = m.kill();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One room: a real orion-control on a socket this bench serves as oriond would.
struct Room {
    id: String,
    _control: ChildGuard,
}

fn start_room(
    dir: &Path,
    i: usize,
    nodes: &Nodes,
    recording: &Arc<Recording>,
    stop: &Arc<AtomicBool>,
) -> Result<Room> {
    let id = format!("fleet-{i:04}");
    // Half the rooms start on each node.
    let mut ports = nodes.ports();
    let shift = i % ports.len();
    ports.rotate_left(shift);
    let hosts: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let config = dir.join(format!("{id}.toml"));
    std::fs::write(
        &config,
        format!(
            "instance_id = \"{id}\"\nroom_id = \"{id}\"\n[camera]\nsource = \"test://ball\"\n\
             [mqtt]\nhosts = [{}]\nversion = \"{}\"\ngroups = [\"{GROUP}\"]\nstatus_interval_s = 30\n",
            hosts.join(", "),
            nodes.version()
        ),
    )?;
    let socket = dir.join(format!("{id}.sock"));
    let listener = UnixListener::bind(&socket)?;
    let mut cmd = Command::new(orion_tests::bins::locate("orion-control")?);
    cmd.arg("--config")
        .arg(&config)
        .env(orion_process::channel::SOCKET_ENV, &socket)
        .env("RUST_LOG", "warn");
    let control = ChildGuard::spawn(cmd)?;
    let (stream, _) = listener.accept().context("orion-control did not connect")?;
    let (recording, stop, room) = (recording.clone(), stop.clone(), id.clone());
    std::thread::spawn(move || {
        let _ = serve(stream, &room, &recording, &stop);
    });
    Ok(Room {
        id,
        _control: control,
    })
}

/// oriond's side of one room: the status, then a recorded detection every 200 ms; every
/// request answered (a `get_status` with the status).
fn serve(stream: UnixStream, id: &str, rec: &Recording, stop: &AtomicBool) -> Result<()> {
    let mut reader = stream.try_clone()?;
    let writer = Arc::new(std::sync::Mutex::new(stream));
    let mut status = rec.status.clone();
    status.instance_id = orion_protocol::InstanceId::new(id)?;
    let status_value = serde_json::to_value(&status)?;
    let send = {
        let writer = writer.clone();
        move |m: &Message| -> Result<()> {
            let mut w = writer.lock().map_err(|_| anyhow::anyhow!("socket lock"))?;
            wire::write_message(&mut *w, &message::encode(m))?;
            w.flush()?;
            Ok(())
        }
    };
    // Requests: answered on this thread's clone.
    let answer = send.clone();
    let answers = std::thread::spawn(move || -> Result<()> {
        while let Some(body) = wire::read_message(&mut reader)? {
            if let Ok(Frame::Request(cmd)) = message::decode(&body) {
                let data = if cmd.name == "get_status" {
                    status_value.clone()
                } else {
                    json!({})
                };
                answer(&Message::Ack(Ack::new(&cmd.name, cmd.request_id, Ok(data))))?;
            }
        }
        Ok(())
    });
    send(&Message::Status {
        status: Box::new(status),
    })?;
    let period = Duration::from_secs_f64(1.0 / RATE_HZ);
    let mut next = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut detection = rec.detections[i % rec.detections.len()].clone();
        detection.instance_id = id.to_string();
        detection.room_id = id.to_string();
        detection.publish_ts = None;
        detection.latency_ms = None;
        let captured_unix_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        send(&Message::Detection {
            detection,
            captured_unix_ns,
        })?;
        i += 1;
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    drop(answers);
    Ok(())
}

fn backend(port: u16) -> Result<Fleet> {
    Fleet::connect(Broker {
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        prefix: "care".into(),
    })
}

fn measure(opts: &Options, nodes: &mut Nodes, n: usize, recording: &Recording) -> Result<()> {
    let broker = nodes.name();
    let dir = std::env::temp_dir().join(format!("orion-fleet-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure_in(opts, nodes, n, recording, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result.with_context(|| format!("{broker}, {n} rooms"))
}

fn measure_in(
    opts: &Options,
    nodes: &mut Nodes,
    n: usize,
    recording: &Recording,
    dir: &Path,
) -> Result<()> {
    let broker = nodes.name();
    let recording = Arc::new(Recording {
        detections: recording.detections.clone(),
        status: recording.status.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    // The backend watches everything from node 1 (the node that stays), as an operator's
    // dashboard would.
    let ports = nodes.ports();
    let mut watch = backend(nodes.surviving_port())?;
    let mut seen = Vec::new();
    watch.subscribe(&["care/#".to_string()], &mut seen)?;
    let started = Instant::now();
    let rooms: Vec<Room> = (0..n)
        .map(|i| start_room(dir, i, &*nodes, &recording, &stop))
        .collect::<Result<_>>()?;
    let ids: BTreeSet<String> = rooms.iter().map(|r| r.id.clone()).collect();
    // Every room online (its status seen) before measuring.
    let mut online = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while online.len() < n {
        let Some(m) = watch.next_message(deadline)? else {
            bail!("{} of {n} rooms came online", online.len());
        };
        if let Some(id) = m.topic.strip_prefix("care/status/") {
            online.insert(id.to_string());
        }
    }
    let ready_s = started.elapsed().as_secs_f64();

    // Traffic per room per second.
    let window = Duration::from_secs_f64(opts.window_s);
    let (mut msgs, mut bytes) = (0u64, 0u64);
    let cpu_before = nodes.cpu_s();
    let end = Instant::now() + window;
    while let Some(m) = watch.next_message(end)? {
        msgs += 1;
        bytes += (m.payload.len() + m.topic.len()) as u64;
    }
    let broker_cpu = (nodes.cpu_s() - cpu_before) / window.as_secs_f64();
    let per = n as f64 * window.as_secs_f64();
    report::line(
        &format!("fleet.broker_cpu.{broker}.n{n}"),
        broker_cpu,
        "cores",
        json!({
            "rooms": n, "window_s": opts.window_s,
            "msgs_in_per_s": report::round(msgs as f64 / window.as_secs_f64()),
            "note": "every broker process, utime + stime over the window; one subscriber to care/#",
        }),
    );
    report::line(
        &format!("fleet.msgs_per_room_s.{broker}.n{n}"),
        msgs as f64 / per,
        "msg/s",
        json!({"rooms": n, "window_s": opts.window_s, "rate_hz": RATE_HZ, "ready_s": report::round(ready_s)}),
    );
    report::line(
        &format!("fleet.bytes_per_room_s.{broker}.n{n}"),
        bytes as f64 / per,
        "B/s",
        json!({"rooms": n, "window_s": opts.window_s, "rate_hz": RATE_HZ}),
    );
    drop(watch);

    // A group command's last ack, from a second node than the rooms' half.
    let mut commander = backend(ports[0])?;
    let mut last = Vec::with_capacity(opts.commands);
    let mut missing = 0;
    for _ in 0..opts.commands {
        let outcome = commander.send(
            &Target::Group(GROUP.into()),
            "get_status",
            json!({}),
            &ids,
            Duration::from_secs(30),
        )?;
        missing += outcome.missing.len();
        if let Some(d) = outcome.last() {
            last.push(d.as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    report::line(
        &format!("fleet.group_last_ack_ms.{broker}.n{n}"),
        percentile(&last, 99.0).context("no group acks")?,
        "ms",
        json!({
            "rooms": n, "commands": opts.commands, "p50_ms": report::round(percentile(&last, 50.0).unwrap_or(0.0)),
            "max_ms": report::round(last.iter().copied().fold(0.0, f64::max)), "acks_missing": missing,
        }),
    );
    drop(commander);

    let (failover_s, lost) = failover(nodes, &ids)?;
    report::line(
        &format!("fleet.failover_s.{broker}.n{n}"),
        failover_s,
        "s",
        json!({"rooms": n, "rooms_cut_off": if ports.len() > 1 { n / 2 } else { n }, "commands": n, "lost": lost, "target_lost": 0}),
    );
    stop.store(true, Ordering::Relaxed);
    drop(rooms);
    Ok(())
}

/// Kills a node (on RabbitMQ half the rooms are on it; mosquitto is the only node and comes
/// back) and at once publishes one command to every room on a node that is up: the seconds
/// from the kill until the last ack, and how many never came (60 s).
fn failover(nodes: &mut Nodes, ids: &BTreeSet<String>) -> Result<(f64, usize)> {
    let t0 = Instant::now();
    nodes.kill_one()?;
    let mut backend = backend(nodes.surviving_port())?;
    let mut seen = Vec::new();
    backend.subscribe(&["care/health/+".to_string()], &mut seen)?;
    let mut rids = BTreeMap::new();
    for id in ids {
        let rid = format!("failover-{id}-{}", orion_tests::unique());
        let body = json!({"command": "get_status", "request_id": rid});
        backend.publish(&format!("care/control/{id}"), body.to_string().into_bytes())?;
        rids.insert(rid, id.clone());
    }
    let deadline = t0 + Duration::from_secs(60);
    let mut acked = BTreeSet::new();
    let mut last = Duration::ZERO;
    while acked.len() < rids.len() {
        let Some(m) = backend.next_message(deadline)? else {
            break;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else {
            continue;
        };
        if let Some(rid) = v["request_id"].as_str()
            && rids.contains_key(rid)
            && acked.insert(rid.to_string())
        {
            last = m.at.saturating_duration_since(t0);
        }
    }
    Ok((last.as_secs_f64(), rids.len() - acked.len()))
}

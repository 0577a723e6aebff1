//! A real clustered broker: Debian's `rabbitmq-server` with its MQTT plugin, N nodes on
//! this host (each its own node name, ports and data directory), joined into one cluster,
//! with a private epmd so nothing is shared with a system RabbitMQ. Queues that hold MQTT
//! persistent sessions are mirrored to every node (a policy), so a session outlives the
//! node it was made on. Dropping the cluster kills every node and removes its directory.
//!
//! RabbitMQ 3.10 (Debian 12) speaks MQTT 3.1.1 only, keeps retained messages per node and
//! answers a wildcard subscription without them (docs/fleet.md).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::child::ChildGuard;
use crate::mqtt::free_port;

/// Debian's scripts that run as the calling user (`/usr/sbin/rabbitmq-*` switch to the
/// `rabbitmq` user).
const BIN: &str = "/usr/lib/rabbitmq/bin";

/// How long a node may take to start (Erlang boots in a few seconds on 2 cores).
const NODE_START: Duration = Duration::from_secs(90);

pub struct Node {
    pub name: String,
    pub mqtt_port: u16,
    dir: PathBuf,
    guard: Option<ChildGuard>,
}

pub struct RabbitCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
    epmd_port: u16,
    _epmd: ChildGuard,
}

/// Whether Debian's rabbitmq-server is installed (scripts/install-deps.sh installs it).
pub fn installed() -> bool {
    Path::new(BIN).join("rabbitmq-server").exists()
}

impl RabbitCluster {
    /// Starts `n` nodes and joins the others to the first.
    pub fn start(n: usize) -> Result<Self> {
        anyhow::ensure!(
            installed(),
            "rabbitmq-server is not installed: run scripts/install-deps.sh"
        );
        let dir = std::env::temp_dir().join(format!(
            "orion-rabbit-{}-{}",
            std::process::id(),
            crate::unique()
        ));
        std::fs::create_dir_all(dir.join("home"))?;
        let cookie = dir.join("home/.erlang.cookie");
        std::fs::write(&cookie, format!("orion{}", crate::unique()))?;
        set_mode(&cookie, 0o400)?;
        let epmd_port = free_port()?;
        let mut epmd = Command::new("epmd");
        epmd.args(["-port", &epmd_port.to_string()]);
        let epmd = ChildGuard::spawn(epmd).context("start epmd (part of erlang-base)")?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
            epmd_port,
            _epmd: epmd,
        };
        for i in 0..n {
            let name = format!("orion{}@localhost", (b'a' + i as u8) as char);
            let node = cluster.start_node(&name)?;
            cluster.nodes.push(node);
        }
        for i in 0..n {
            cluster.await_startup(i)?;
        }
        let first = cluster.nodes[0].name.clone();
        for i in 1..n {
            let name = cluster.nodes[i].name.clone();
            cluster.ctl(&name, &["stop_app"])?;
            cluster.ctl(&name, &["join_cluster", &first])?;
            cluster.ctl(&name, &["start_app"])?;
        }
        cluster.ctl(
            &first,
            &[
                "set_policy",
                "--apply-to",
                "queues",
                "orion-mqtt-sessions",
                "^mqtt-subscription-",
                r#"{"ha-mode":"all","ha-sync-mode":"automatic"}"#,
            ],
        )?;
        for i in 0..n {
            cluster.wait_mqtt(i)?;
        }
        Ok(cluster)
    }

    fn start_node(&self, name: &str) -> Result<Node> {
        let short = name.split('@').next().unwrap_or(name);
        let dir = self.dir.join(short);
        std::fs::create_dir_all(&dir)?;
        let (amqp, dist, mqtt) = (free_port()?, free_port()?, free_port()?);
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_mqtt].\n")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = {amqp}\n\
                 mqtt.listeners.tcp.default = {mqtt}\n\
                 mqtt.allow_anonymous = true\n\
                 log.console = false\n\
                 log.file.level = warning\n"
            ),
        )?;
        let mut cmd = Command::new(Path::new(BIN).join("rabbitmq-server"));
        self.env(&mut cmd, name);
        cmd.env("RABBITMQ_NODE_PORT", amqp.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"));
        let guard = ChildGuard::spawn(cmd).context("start rabbitmq-server")?;
        Ok(Node {
            name: name.to_string(),
            mqtt_port: mqtt,
            dir,
            guard: Some(guard),
        })
    }

    fn env(&self, cmd: &mut Command, node: &str) {
        cmd.env("HOME", self.dir.join("home"))
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_NODENAME", node);
    }

    /// `rabbitmqctl -n NODE ARGS…`: its output, or an error with it.
    pub fn ctl(&self, node: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(Path::new(BIN).join("rabbitmqctl"));
        self.env(&mut cmd, node);
        let out = cmd.arg("-n").arg(node).args(args).output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "rabbitmqctl {args:?} on {node}: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    fn await_startup(&self, i: usize) -> Result<()> {
        let name = &self.nodes[i].name;
        let deadline = Instant::now() + NODE_START;
        loop {
            let waited = self.ctl(name, &["await_startup", "--timeout", "5"]);
            if waited.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name} did not start: {waited:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_mqtt(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i];
        let deadline = Instant::now() + NODE_START;
        while TcpStream::connect(("127.0.0.1", node.mqtt_port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "{} does not listen for MQTT on {}",
                    node.name,
                    node.mqtt_port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The Erlang VM's pid of node `i` (the script that started it only waits for it).
    pub fn vm_pid(&self, i: usize) -> Result<Pid> {
        let file = self.nodes[i].dir.join("pid");
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        let pid: i32 = text.trim().parse().context("pid file")?;
        Ok(Pid::from_raw(pid))
    }

    /// SIGKILLs node `i`'s VM: the node dies as in a crash, with its connections.
    pub fn kill_node(&mut self, i: usize) -> Result<()> {
        let pid = self.vm_pid(i)?;
        kill(pid, Signal::SIGKILL).context("kill the node")?;
        if let Some(mut guard) = self.nodes[i].guard.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while guard.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].guard.is_some() {
                let _ = self.kill_node(i);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

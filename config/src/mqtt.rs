//! `[mqtt]`: the broker (or several nodes of one), identity, topics, QoS and what MQTT may
//! command.

use std::fmt;
use std::path::PathBuf;

use orion_protocol::GroupName;
use orion_protocol::command::{MQTT_COMMANDS, MQTT_GROUP_DEFAULT, MQTT_GUARDED};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mqtt {
    /// Without MQTT the box is driven by `orionctl` only (no control process).
    pub enabled: bool,
    /// Run a local broker on `host:port` (localhost only) as a supervised child of oriond:
    /// the zero-setup demo (ADR 0006).
    pub embedded: bool,
    /// The broker program `embedded` runs (mosquitto).
    pub broker_program: PathBuf,
    pub host: String,
    pub port: u16,
    /// The nodes of a clustered broker, tried in order (`["node-a:1883", "node-b:1883"]`);
    /// when set, `host` and `port` are not used. On the loss of the node in use
    /// orion-control moves to the next at once.
    pub hosts: Vec<BrokerAddr>,
    /// `5` or `3.1.1`.
    pub version: String,
    /// Default `orion-{instance_id}`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// File holding the password (never the password itself in this file).
    pub password_file: Option<PathBuf>,
    pub tls: Option<Tls>,
    pub prefix: String,
    pub keepalive_s: u64,
    pub status_interval_s: u64,
    /// Commands waiting for their ack at once; more are rejected with an error ack.
    pub max_inflight_commands: u32,
    /// A command older than this is refused (`expired`) instead of applied: its
    /// `timestamp`, if it has one, must be newer; and the broker keeps orion-control's
    /// persistent session (MQTT 5) at most this long.
    pub command_max_age_s: u32,
    pub qos: Qos,
    /// The commands MQTT may give (by name). By default all but `shutdown` and
    /// `restart_process`: whoever may publish to the command topic must not be able to
    /// take the room dark. The supervisor verbs are never allowed over MQTT.
    pub allowed_commands: Vec<String>,
    /// The groups this room belongs to (a floor, a wing): it takes the commands published
    /// on `{prefix}/control/group/{group}` too, and acks them on its own topics.
    pub groups: Vec<GroupName>,
    /// What a group command may be; a command must be in `allowed_commands` as well.
    pub group_allowed_commands: Vec<String>,
    /// Send `username`/password to a broker that is not on this host without TLS (a lab
    /// only; warned about at start).
    pub allow_insecure: bool,
}

impl Mqtt {
    /// Whether MQTT may give `command` (see `allowed_commands`).
    pub fn allows(&self, command: &str) -> bool {
        self.allowed_commands.iter().any(|c| c == command)
    }

    /// Why MQTT may not give `command`, naming the rule; `None` if it may.
    pub fn refuses(&self, command: &str) -> Option<String> {
        (!self.allows(command)).then(|| {
            format!(
                "{command} is not in [mqtt] allowed_commands on this device \
                 (by default MQTT may not shutdown, restart_process or get_snapshot)"
            )
        })
    }

    /// Why a command to one of this room's groups may not be `command`; `None` if it may.
    pub fn refuses_for_group(&self, command: &str) -> Option<String> {
        if !self.group_allowed_commands.iter().any(|c| c == command) {
            return Some(format!(
                "{command} is not in [mqtt] group_allowed_commands on this device (by \
                 default a group command may be {}); send it to the room itself",
                MQTT_GROUP_DEFAULT.join(", ")
            ));
        }
        self.refuses(command)
    }

    /// The broker nodes in the order they are tried: `hosts`, else `host:port`.
    pub fn brokers(&self) -> Vec<BrokerAddr> {
        if self.hosts.is_empty() {
            vec![BrokerAddr {
                host: self.host.clone(),
                port: self.port,
            }]
        } else {
            self.hosts.clone()
        }
    }

    /// Whether every broker node is on this host (credentials never leave it).
    pub fn broker_is_local(&self) -> bool {
        self.brokers().iter().all(BrokerAddr::is_local)
    }
}

/// One broker node, `host:port` (`[v6-address]:port` for an IPv6 address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

impl BrokerAddr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not host:port (e.g. \"node-a:1883\", \"[::1]:1883\")");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.len() > 253 || host.contains(['/', ' ', '[', ']']) || port == 0 {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }

    pub fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl TryFrom<String> for BrokerAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<BrokerAddr> for String {
    fn from(b: BrokerAddr) -> String {
        b.to_string()
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What `[mqtt] allowed_commands` holds unless configured.
pub fn default_allowed_commands() -> Vec<String> {
    MQTT_COMMANDS
        .iter()
        .filter(|c| !MQTT_GUARDED.contains(c))
        .map(|c| c.to_string())
        .collect()
}

impl Default for Mqtt {
    fn default() -> Self {
        Self {
            enabled: true,
            embedded: false,
            broker_program: "/usr/sbin/mosquitto".into(),
            host: "localhost".into(),
            port: 1883,
            hosts: Vec::new(),
            version: "5".into(),
            client_id: None,
            username: None,
            password_file: None,
            tls: None,
            prefix: "care".into(),
            keepalive_s: 30,
            status_interval_s: 30,
            max_inflight_commands: 32,
            command_max_age_s: 60,
            qos: Qos::default(),
            allowed_commands: default_allowed_commands(),
            groups: Vec::new(),
            group_allowed_commands: MQTT_GROUP_DEFAULT.iter().map(|c| c.to_string()).collect(),
            allow_insecure: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Qos {
    pub detections: u8,
    pub status: u8,
    pub acks: u8,
    pub availability: u8,
    pub commands: u8,
    /// Care events: happenings a backend must not miss.
    pub events: u8,
}

/// Acks and status default to QoS 0: a QoS 1 publish makes the broker send a PUBACK, and a
/// broker with Nagle on (mosquitto's default) then holds the next command back until our
/// delayed ACK (~40 ms; ADR 0004). Availability (and its last will) and commands keep QoS 1.
impl Default for Qos {
    fn default() -> Self {
        Self {
            detections: 0,
            status: 0,
            acks: 0,
            availability: 1,
            commands: 1,
            events: 1,
        }
    }
}

//! One face for rumqttc's MQTT 3.1.1 and MQTT 5 clients: connect options from the config
//! (last will, credentials from a file, TLS), publishing with an optional v5 correlation,
//! and the events the app cares about. The event loop runs on its own task, reconnecting
//! with capped exponential backoff, so a broker outage never blocks the app.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use orion_config::{BrokerAddr, Config};
use orion_process::backoff::Backoff;
use rumqttc::v5::mqttbytes::v5::{LastWill as LastWill5, PublishProperties};
use tokio::sync::mpsc;

use crate::topics::Topics;

/// Largest packet accepted from the broker: well above the 64 KiB command limit, so an
/// oversize command is read and answered with an error instead of dropping the connection.
/// MQTT 5 announces it, and the broker keeps larger ones back; MQTT 3.1.1 cannot, see
/// [`Event::Unreadable`].
pub const MAX_INCOMING: usize = orion_protocol::limits::MAX_MQTT_PACKET;
/// Reconnect delays: 0.25 s doubling to 30 s, from the start again once connected.
fn backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(250),
        Duration::from_secs(30),
        Duration::MAX,
    )
}

/// A message on a subscribed topic.
pub struct Received {
    pub topic: String,
    pub payload: Bytes,
    /// MQTT 5 response topic and correlation data.
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
    /// The broker's redelivery flag (a QoS 1 message it sent before, unacknowledged).
    pub redelivered: bool,
    /// The retain flag: a message the broker kept and sends on every (re)subscription.
    pub retained: bool,
    /// What acknowledges it to the broker ([`Client::acknowledge`]).
    pub receipt: Receipt,
}

/// A received publish, kept until it is acknowledged to the broker (PUBACK). Until then the
/// broker keeps a QoS 1 command in the persistent session and redelivers it to the next
/// orion-control if this one dies.
pub enum Receipt {
    V4(Box<rumqttc::Publish>),
    V5(Box<rumqttc::v5::mqttbytes::v5::Publish>),
}

pub enum Event {
    /// (Re)connected to `broker` (`host:port`): subscribe and republish retained state now.
    Connected {
        broker: String,
    },
    Message(Received),
    /// The connection is gone; the event loop tries `next` (`host:port`) after
    /// `retry_in`.
    Disconnected {
        error: String,
        /// The broker said another client took this client id's session (MQTT 5); under
        /// 3.1.1 the broker only closes the connection (`closed_by_broker`).
        taken_over: bool,
        closed_by_broker: bool,
        retry_in: Duration,
        next: String,
    },
    /// MQTT 3.1.1: the broker delivered a packet of `bytes`, over [`MAX_INCOMING`]. It
    /// cannot be read, so it cannot be acknowledged, and the broker would deliver it again
    /// on every connection. The event loop reconnects once with a clean session, which
    /// makes the broker discard what it queued for this client, then persistently again.
    Unreadable {
        bytes: usize,
    },
}

#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl Client {
    /// Queues a publish; fails (without waiting) when the request queue is full.
    pub fn try_publish(
        &self,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: Vec<u8>,
        correlation: Option<Bytes>,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, qos4(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => {
                let props = PublishProperties {
                    correlation_data: correlation,
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(qos), retain, payload, props)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Acknowledges a received message to the broker (no-op for QoS 0).
    pub fn acknowledge(&self, receipt: &Receipt) -> Result<(), String> {
        match (self, receipt) {
            (Client::V4(c), Receipt::V4(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            (Client::V5(c), Receipt::V5(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            _ => Err("receipt of the other protocol version".into()),
        }
    }

    pub fn try_subscribe(&self, topic: &str, qos: u8) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_subscribe(topic, qos4(qos)).map_err(|e| e.to_string()),
            Client::V5(c) => c.try_subscribe(topic, qos5(qos)).map_err(|e| e.to_string()),
        }
    }
}

/// Builds the client and starts its event loop; events arrive on the returned channel.
pub fn start(config: &Config, topics: &Topics) -> Result<(Client, mpsc::Receiver<Event>)> {
    let m = &config.mqtt;
    let password = config.mqtt_password()?;
    let transport = tls(config)?;
    if m.username.is_some() && transport.is_none() && !m.broker_is_local() {
        // Only reachable with mqtt.allow_insecure (the config check refuses it otherwise).
        tracing::warn!(
            brokers = ?m.brokers().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "MQTT credentials go to a remote broker without TLS (mqtt.allow_insecure); a lab only"
        );
    }
    let (tx, rx) = mpsc::channel(1024);
    let settings = Settings {
        id: config.mqtt_client_id(),
        keepalive: Duration::from_secs(m.keepalive_s),
        username: m.username.clone(),
        password,
        transport,
        will_topic: topics.availability.clone(),
        will_qos: m.qos.availability,
        session_expiry_s: m.command_max_age_s,
    };
    let brokers = m.brokers();
    let client = if m.version == "5" {
        let options: Vec<_> = brokers.iter().map(|b| settings.v5(b)).collect();
        let (client, eventloop) = rumqttc::v5::AsyncClient::new(options[0].clone(), 1024);
        tokio::spawn(run_v5(eventloop, Nodes::new(brokers, options), tx));
        Client::V5(client)
    } else {
        let options: Vec<_> = brokers.iter().map(|b| settings.v4(b)).collect();
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options[0].clone(), 1024);
        eventloop.set_network_options(no_delay());
        tokio::spawn(run_v4(eventloop, Nodes::new(brokers, options), tx));
        Client::V4(client)
    };
    Ok((client, rx))
}

/// What every broker node is connected with.
struct Settings {
    id: String,
    keepalive: Duration,
    username: Option<String>,
    password: Option<String>,
    transport: Option<rumqttc::Transport>,
    will_topic: String,
    will_qos: u8,
    session_expiry_s: u32,
}

impl Settings {
    fn v5(&self, node: &BrokerAddr) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(self.id.clone(), node.host.clone(), node.port);
        // A persistent session that outlives an orion-control restart by at most the age a
        // command may reach: the broker queues QoS 1 commands while we are away.
        o.set_keep_alive(self.keepalive)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(self.session_expiry_s))
            .set_manual_acks(true)
            .set_max_packet_size(Some(MAX_INCOMING as u32))
            .set_last_will(LastWill5::new(
                self.will_topic.clone(),
                "offline",
                qos5(self.will_qos),
                true,
                None,
            ));
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(t) = &self.transport {
            o.set_transport(t.clone());
        }
        o.set_network_options(no_delay());
        o
    }

    fn v4(&self, node: &BrokerAddr) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(self.id.clone(), node.host.clone(), node.port);
        // MQTT 3.1.1 has no session expiry: the broker keeps the session until its own
        // limit; commands carrying a timestamp older than command_max_age_s are refused.
        o.set_keep_alive(self.keepalive)
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_max_packet_size(MAX_INCOMING, MAX_INCOMING)
            .set_last_will(rumqttc::LastWill::new(
                self.will_topic.clone(),
                "offline",
                qos4(self.will_qos),
                true,
            ));
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(t) = &self.transport {
            o.set_transport(t.clone());
        }
        o
    }
}

/// The broker nodes and which one is in use. A lost node is left for the next at once;
/// the backoff applies only when every node failed since the last connection.
struct Nodes<O> {
    addrs: Vec<BrokerAddr>,
    options: Vec<O>,
    current: usize,
    /// Nodes tried without a connection since the last one.
    failed: usize,
    backoff: Backoff,
}

impl<O: Clone> Nodes<O> {
    fn new(addrs: Vec<BrokerAddr>, options: Vec<O>) -> Self {
        Self {
            addrs,
            options,
            current: 0,
            failed: 0,
            backoff: backoff(),
        }
    }

    fn connected(&mut self) -> String {
        self.failed = 0;
        self.backoff.reset();
        self.addrs[self.current].to_string()
    }

    /// The connection to the current node failed: the next node's options, and how long to
    /// wait before trying it.
    fn failed(&mut self) -> (O, Duration) {
        self.failed += 1;
        let wait = if self.failed >= self.addrs.len() {
            self.failed = 0;
            self.backoff.after_run(Duration::ZERO)
        } else {
            Duration::ZERO
        };
        self.current = (self.current + 1) % self.addrs.len();
        (self.options[self.current].clone(), wait)
    }

    fn current(&self) -> String {
        self.addrs[self.current].to_string()
    }
}

/// Acks are small and answer a request: Nagle's algorithm would hold one back until the
/// broker acknowledges the previous packet (tens of milliseconds with delayed ACKs).
fn no_delay() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

fn tls(config: &Config) -> Result<Option<rumqttc::Transport>> {
    let Some(tls) = &config.mqtt.tls else {
        return Ok(None);
    };
    // rustls needs a crypto provider; ring builds without a C toolchain dance.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |key: &str, p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("mqtt.tls.{key}: cannot read {}", p.display()))
    };
    let ca = read("ca", &tls.ca)?;
    let client_auth = match (&tls.cert, &tls.key) {
        (Some(cert), Some(_)) => {
            let key = config.mqtt_tls_key()?.unwrap_or_default();
            Some((read("cert", cert)?, key.into_bytes()))
        }
        _ => None,
    };
    Ok(Some(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        },
    )))
}

/// Reports a lost connection, then waits before the next attempt. False when the app is
/// gone.
async fn disconnected(
    tx: &mpsc::Sender<Event>,
    (error, taken_over, closed_by_broker): (String, bool, bool),
    retry_in: Duration,
    next: String,
) -> bool {
    let event = Event::Disconnected {
        error,
        taken_over,
        closed_by_broker,
        retry_in,
        next,
    };
    if tx.send(event).await.is_err() {
        return false;
    }
    tokio::time::sleep(retry_in).await;
    true
}

async fn run_v4(
    mut eventloop: rumqttc::EventLoop,
    mut nodes: Nodes<rumqttc::MqttOptions>,
    tx: mpsc::Sender<Event>,
) {
    use rumqttc::{Event as E, Packet};
    let mut discarding = false;
    loop {
        let event = match eventloop.poll().await {
            Ok(E::Incoming(Packet::ConnAck(_))) if discarding => {
                // The clean session dropped the broker's queue; nothing was subscribed on
                // it. Back to the persistent session at once.
                discarding = false;
                eventloop.mqtt_options.set_clean_session(false);
                eventloop.network = None;
                continue;
            }
            Ok(E::Incoming(Packet::ConnAck(_))) => Event::Connected {
                broker: nodes.connected(),
            },
            Ok(E::Incoming(Packet::Publish(p))) => Event::Message(Received {
                topic: p.topic.clone(),
                payload: p.payload.clone(),
                response_topic: None,
                correlation: None,
                redelivered: p.dup,
                retained: p.retain,
                receipt: Receipt::V4(Box::new(p)),
            }),
            Ok(_) => continue,
            Err(e) => {
                let (wait, next) = if let Some(bytes) = unreadable_v4(&e) {
                    // Not the node's fault: the same node again, with a clean session.
                    discarding = true;
                    eventloop.mqtt_options.set_clean_session(true);
                    if tx.send(Event::Unreadable { bytes }).await.is_err() {
                        return;
                    }
                    (Duration::ZERO, nodes.current())
                } else {
                    let (options, wait) = nodes.failed();
                    eventloop.mqtt_options = options;
                    (wait, nodes.current())
                };
                let closed = matches!(
                    e,
                    rumqttc::ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted)
                );
                if !disconnected(&tx, (e.to_string(), false, closed), wait, next).await {
                    return;
                }
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// The size of a packet too large to read, if that is why the connection ended.
fn unreadable_v4(e: &rumqttc::ConnectionError) -> Option<usize> {
    match e {
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(bytes),
        )) => Some(*bytes),
        _ => None,
    }
}

async fn run_v5(
    mut eventloop: rumqttc::v5::EventLoop,
    mut nodes: Nodes<rumqttc::v5::MqttOptions>,
    tx: mpsc::Sender<Event>,
) {
    use rumqttc::v5::Event as E;
    use rumqttc::v5::mqttbytes::v5::Packet;
    loop {
        let event = match eventloop.poll().await {
            Ok(E::Incoming(Packet::ConnAck(_))) => Event::Connected {
                broker: nodes.connected(),
            },
            Ok(E::Incoming(Packet::Publish(p))) => {
                let (response_topic, correlation) = p
                    .properties
                    .clone()
                    .map(|props| (props.response_topic, props.correlation_data))
                    .unwrap_or_default();
                Event::Message(Received {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.clone(),
                    response_topic,
                    correlation,
                    redelivered: p.dup,
                    retained: p.retain,
                    receipt: Receipt::V5(Box::new(p)),
                })
            }
            Ok(_) => continue,
            Err(e) => {
                use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
                use rumqttc::v5::{ConnectionError, StateError};
                let (taken_over, closed) = match &e {
                    ConnectionError::MqttState(StateError::ServerDisconnect {
                        reason_code,
                        ..
                    }) => (*reason_code == DisconnectReasonCode::SessionTakenOver, true),
                    ConnectionError::MqttState(StateError::ConnectionAborted) => (false, true),
                    _ => (false, false),
                };
                let (options, wait) = nodes.failed();
                eventloop.options = options;
                let why = (e.to_string(), taken_over, closed);
                if !disconnected(&tx, why, wait, nodes.current()).await {
                    return;
                }
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

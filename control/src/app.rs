//! The control loop: MQTT commands → validated → oriond → one ack each; oriond's status
//! and the detector's detections → MQTT. Availability and the retained status are
//! (re)published on every connect; nothing waits on the broker, and everything dropped is
//! counted in the status.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use bytes::Bytes;
use orion_config::Config;
use orion_protocol::Occupancy;
use orion_protocol::command::{self, AckError, ErrorKind, MAX_COMMAND};
use orion_protocol::message::{self, Frame, Message};
use orion_protocol::mqtt_ack::MqttAck;
use orion_protocol::status::{MqttCounters, Status, StoppedBy};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::mqtt::{self, Client, Event, Receipt, Received};
use crate::oriond::Link;
use crate::topics::Topics;

mod publish;
mod takeover;

/// Where an answer goes, and the broker receipt acknowledged once it went.
struct Origin {
    command: String,
    request_id: Option<String>,
    response_topic: Option<String>,
    correlation: Option<Bytes>,
    receipt: Receipt,
    /// The broker delivered it before (to a predecessor that died before acknowledging
    /// it): its ack says so, since that predecessor may have published one already.
    redelivered: bool,
    /// When it came in (for [`INFLIGHT_TIMEOUT`]).
    received: Instant,
    /// The group topic it came on; `None` for this room's own.
    group: Option<String>,
}

/// How long a command forwarded to oriond may wait for its answer. oriond answers every
/// request within its own limits (`orion_protocol::timeouts`); past this one the request
/// was lost, and the commander gets a `timeout` instead of silence.
const INFLIGHT_TIMEOUT: Duration = orion_protocol::timeouts::COMMANDER;

pub struct App {
    config: Config,
    topics: Topics,
    client: Client,
    link_out: mpsc::Sender<Vec<u8>>,
    /// Commands forwarded to oriond, by the request id oriond answers to. A redelivered
    /// command may be in flight twice under one id: answers are taken in order.
    inflight: HashMap<String, VecDeque<Origin>>,
    next_id: u64,
    counters: MqttCounters,
    status: Option<Box<Status>>,
    status_key: Option<publish::Significant>,
    status_published: Option<Instant>,
    /// Who stopped the room over MQTT (an allowed `shutdown`), shown in the status.
    stopped_by: Option<StoppedBy>,
    /// oriond's latest room occupancy (published retained on change and on connect).
    occupancy: Option<Occupancy>,
    /// The broker node of the last connection (a connection to another is a failover).
    last_broker: Option<String>,
    takeovers: takeover::Takeovers,
    /// Each zone's latest occupancy; `None`: the zone is gone and its retained message is
    /// still to be cleared (kept until connected).
    zones: std::collections::BTreeMap<String, Option<orion_protocol::occupancy::ZoneOccupancy>>,
}

pub async fn run(config: Config, link: Link) -> Result<()> {
    let topics = Topics::new(&config);
    let (client, mut events) = mqtt::start(&config, &topics)?;
    let Link { outbox, mut inbox } = link;
    let groups = config.mqtt.groups.iter().map(ToString::to_string).collect();
    let mut app = App {
        config,
        topics,
        client,
        link_out: outbox,
        inflight: HashMap::new(),
        next_id: 1,
        counters: MqttCounters {
            groups,
            ..MqttCounters::default()
        },
        status: None,
        status_key: None,
        status_published: None,
        stopped_by: None,
        occupancy: None,
        last_broker: None,
        takeovers: Default::default(),
        zones: Default::default(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => app.mqtt_event(event),
                None => anyhow::bail!("the MQTT event loop ended"),
            },
            body = inbox.recv() => match body {
                Some(body) => app.oriond_message(&body),
                None => {
                    tracing::info!("oriond's socket closed; stopping");
                    break;
                }
            },
            _ = tick.tick() => {
                app.expire_inflight();
                app.publish_status(false);
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM; going offline");
                break;
            }
        }
    }
    // An orderly stop says so at once instead of waiting for the broker's keepalive.
    let qos = app.config.mqtt.qos.availability;
    let _ = app.client.try_publish(
        &app.topics.availability,
        qos,
        true,
        b"offline".to_vec(),
        None,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl App {
    fn mqtt_event(&mut self, event: Event) {
        match event {
            Event::Connected { broker } => {
                self.counters.connected = true;
                self.counters.connects += 1;
                if self.last_broker.as_ref().is_some_and(|b| *b != broker) {
                    self.counters.failovers += 1;
                    tracing::warn!(
                        broker,
                        from = self.last_broker,
                        "MQTT moved to another broker node"
                    );
                }
                self.last_broker = Some(broker.clone());
                self.counters.broker = Some(broker.clone());
                self.counters.last_error = None;
                tracing::info!(broker, "MQTT connected");
                let m = &self.config.mqtt;
                let command_topics = std::iter::once(&self.topics.control)
                    .chain(self.topics.groups.iter().map(|(t, _)| t));
                for topic in command_topics {
                    if let Err(e) = self.client.try_subscribe(topic, m.qos.commands) {
                        tracing::error!(error = e, topic, "cannot subscribe to a command topic");
                    }
                }
                let _ = self.client.try_publish(
                    &self.topics.availability,
                    m.qos.availability,
                    true,
                    b"online".to_vec(),
                    None,
                );
                self.publish_status(true);
                self.publish_occupancy();
                self.publish_zones();
                self.announce_to_home_assistant();
            }
            Event::Disconnected {
                error,
                taken_over,
                closed_by_broker,
                retry_in,
                next,
            } => {
                let was_up = self.counters.connected;
                let error = match was_up
                    .then(|| {
                        self.takeovers
                            .ended(taken_over, closed_by_broker, Instant::now())
                    })
                    .flatten()
                {
                    Some(why) => {
                        self.counters.session_takeovers += 1;
                        let id = self.config.mqtt_client_id();
                        tracing::error!(
                            client_id = id,
                            why,
                            "another client uses this room's MQTT client id: is another box \
                             left at the same instance_id? Give each box its own (orion-setup \
                             derives one from the machine)"
                        );
                        format!("session taken over: {why} (client id {id}); {error}")
                    }
                    None => error,
                };
                if self.counters.connected || self.counters.last_error.as_deref() != Some(&error) {
                    tracing::warn!(
                        error,
                        retry_in_ms = retry_in.as_millis() as u64,
                        next,
                        "MQTT connection lost; reconnecting"
                    );
                }
                self.counters.connected = false;
                self.counters.broker = Some(next);
                self.counters.last_error = Some(error);
            }
            Event::Unreadable { bytes } => {
                self.counters.unreadable_discarded += 1;
                tracing::error!(
                    bytes,
                    max = crate::mqtt::MAX_INCOMING,
                    "the broker delivered a packet too large to read (MQTT 3.1.1 cannot \
                     announce a limit); reconnecting once with a clean session so the broker \
                     discards it instead of delivering it on every connection. Commands it \
                     queued behind it are discarded too: set the broker's max_packet_size, \
                     or use MQTT 5"
                );
            }
            Event::Message(msg) => {
                if msg.topic == self.topics.control {
                    self.command(msg, None);
                } else if let Some(group) = self.topics.group_of(&msg.topic) {
                    let group = group.to_string();
                    self.counters.group_commands += 1;
                    self.command(msg, Some(group));
                } else {
                    self.home_assistant_message(&msg);
                    if let Err(e) = self.client.acknowledge(&msg.receipt) {
                        tracing::warn!(error = e, "cannot acknowledge a message to the broker");
                    }
                }
            }
        }
    }

    /// One command from MQTT: validated here (nothing reaches oriond otherwise), then
    /// forwarded; the ack goes out when oriond answers, and only then is the message
    /// acknowledged to the broker, so a command in flight here when this process dies is
    /// redelivered to the next one (oriond answers a repeated request id again without
    /// applying it twice).
    fn command(&mut self, msg: Received, group: Option<String>) {
        self.counters.commands += 1;
        if msg.redelivered {
            self.counters.commands_redelivered += 1;
        }
        let mut origin = Origin {
            command: "unknown".into(),
            request_id: None,
            response_topic: msg.response_topic,
            correlation: msg.correlation,
            receipt: msg.receipt,
            redelivered: msg.redelivered,
            received: Instant::now(),
            group,
        };
        if msg.retained {
            // A retained command would be applied again after every reconnect.
            self.counters.commands_retained += 1;
            let why = format!(
                "a retained command is not applied (the broker sends it again on every \
                 reconnect): publish commands without the retain flag, and clear this one \
                 with an empty retained message on {}",
                msg.topic
            );
            let cmd = std::str::from_utf8(&msg.payload)
                .ok()
                .filter(|t| t.len() <= MAX_COMMAND)
                .map(command::parse);
            if let Some(cmd) = cmd {
                origin.command = cmd.name;
                origin.request_id = cmd.request_id;
            }
            return self.reject(origin, AckError::new(ErrorKind::Retained, why));
        }
        if msg.payload.len() > MAX_COMMAND {
            let why = format!(
                "payload of {} bytes is over the {MAX_COMMAND}-byte limit",
                msg.payload.len()
            );
            return self.reject(origin, AckError::bad_request(why));
        }
        let Ok(text) = std::str::from_utf8(&msg.payload) else {
            return self.reject(origin, AckError::bad_request("payload is not UTF-8"));
        };
        let cmd = command::parse(text);
        origin.command = cmd.name.clone();
        origin.request_id = cmd.request_id.clone();
        if let Some(why) = origin
            .response_topic
            .as_deref()
            .and_then(|t| self.topics.refuse_response_topic(t))
        {
            // Answer on the health topic only: the refused topic gets nothing.
            origin.response_topic = None;
            return self.reject(origin, AckError::new(ErrorKind::Refused, why));
        }
        let action = match cmd.action {
            Ok(a) => a,
            Err(e) => return self.reject(origin, e),
        };
        if action.is_local_only() {
            let why = format!(
                "{} is for orionctl on oriond's socket, not MQTT",
                action.name()
            );
            return self.reject(origin, AckError::new(ErrorKind::Refused, why));
        }
        let refused = match &origin.group {
            Some(_) => self.config.mqtt.refuses_for_group(action.name()),
            None => self.config.mqtt.refuses(action.name()),
        };
        if let Some(why) = refused {
            self.counters.commands_refused += 1;
            return self.reject(origin, AckError::new(ErrorKind::Refused, why));
        }
        if let Some(sent) = &cmd.timestamp
            && let Err(why) = self.check_age(sent)
        {
            self.counters.commands_expired += 1;
            return self.reject(origin, why);
        }
        let max = self.config.mqtt.max_inflight_commands as usize;
        let in_flight: usize = self.inflight.values().map(VecDeque::len).sum();
        if in_flight >= max {
            return self.reject(
                origin,
                AckError::new(
                    ErrorKind::Busy,
                    format!("too many commands in flight (at most {max}); try again"),
                ),
            );
        }
        // A command with a request id is named by that id and its bytes for oriond's
        // duplicate check: a redelivery repeats both; a reused id with another command
        // does not.
        let id = match &origin.request_id {
            Some(rid) => format!("{}{:016x}", command::MQTT_ID_PREFIX, digest(rid, text)),
            None => {
                self.next_id += 1;
                format!("ctl-{}", self.next_id)
            }
        };
        let request = action.to_request(Some(&id));
        match self.link_out.try_send(request.to_string().into_bytes()) {
            Ok(()) => self.inflight.entry(id).or_default().push_back(origin),
            Err(_) => self.reject(
                origin,
                AckError::new(ErrorKind::Busy, "oriond is not answering; try again"),
            ),
        }
    }

    /// Answers `timeout` for each command oriond has not answered in [`INFLIGHT_TIMEOUT`].
    fn expire_inflight(&mut self) {
        let limit = INFLIGHT_TIMEOUT;
        let mut expired = Vec::new();
        for queue in self.inflight.values_mut() {
            while queue.front().is_some_and(|o| o.received.elapsed() >= limit) {
                expired.extend(queue.pop_front());
            }
        }
        self.inflight.retain(|_, q| !q.is_empty());
        for origin in expired {
            self.counters.commands_timed_out += 1;
            let why = format!("no answer from oriond in {} s", limit.as_secs());
            tracing::warn!(command = origin.command, "{why}");
            self.ack(&origin, Err(AckError::new(ErrorKind::Timeout, why)));
        }
    }

    /// A command's `timestamp` must be RFC 3339 and at most `command_max_age_s` old.
    fn check_age(&self, sent: &str) -> Result<(), AckError> {
        let max = self.config.mqtt.command_max_age_s;
        let at = humantime::parse_rfc3339_weak(sent)
            .map_err(|_| AckError::bad_request(format!("timestamp {sent:?} is not RFC 3339")))?;
        let ahead = command::MAX_CLOCK_AHEAD;
        match SystemTime::now().duration_since(at) {
            Err(e) if e.duration() > ahead => Err(AckError::bad_request(format!(
                "timestamp {sent:?} is {:.0} s ahead of this device's clock (at most {} s): check \
                 both clocks",
                e.duration().as_secs_f64(),
                ahead.as_secs()
            ))),
            Ok(age) if age.as_secs_f64() > f64::from(max) => Err(AckError::new(
                ErrorKind::Expired,
                format!(
                    "expired: sent {:.0} s ago, more than mqtt.command_max_age_s = {max}",
                    age.as_secs_f64()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Publishes an encoded ack on the response topic, if the command named one, and on
    /// the health topic.
    fn publish_ack(&mut self, origin: &Origin, body: Vec<u8>) {
        let qos = self.config.mqtt.qos.acks;
        if let Some(topic) = &origin.response_topic
            && self
                .client
                .try_publish(topic, qos, false, body.clone(), origin.correlation.clone())
                .is_err()
        {
            self.counters.acks_dropped += 1;
        }
        if self
            .client
            .try_publish(&self.topics.health, qos, false, body, None)
            .is_err()
        {
            self.counters.acks_dropped += 1;
            tracing::warn!(command = origin.command, "ack could not be queued");
        }
    }

    fn reject(&mut self, origin: Origin, why: AckError) {
        self.counters.commands_rejected += 1;
        tracing::info!(command = origin.command, error = %why, "command rejected");
        self.ack(&origin, Err(why));
    }

    /// Publishes the ack (first, before anything the command caused), then acknowledges
    /// the command to the broker.
    fn ack(&mut self, origin: &Origin, mut result: Result<Value, AckError>) {
        if origin.command == "get_snapshot"
            && let Ok(data) = &mut result
        {
            // The image follows on its own topic.
            data["topic"] = json!(self.topics.snapshot);
        }
        let mut ack = MqttAck::new(
            &origin.command,
            self.config.instance_id.as_str(),
            origin.request_id.clone(),
            result,
            now_rfc3339(),
        );
        ack.redelivered = origin.redelivered;
        ack.group = origin.group.clone();
        match serde_json::to_vec(&ack) {
            Ok(body) => self.publish_ack(origin, body),
            Err(e) => {
                self.counters.acks_dropped += 1;
                tracing::error!(error = %e, command = origin.command, "cannot encode an ack");
            }
        }
        if let Err(e) = self.client.acknowledge(&origin.receipt) {
            tracing::warn!(error = e, "cannot acknowledge a command to the broker");
        }
    }

    fn oriond_message(&mut self, body: &[u8]) {
        match message::decode(body) {
            Ok(Frame::Message(m)) => match *m {
                Message::Detection {
                    detection,
                    captured_unix_ns,
                } => self.detection(detection, captured_unix_ns),
                Message::Status { status } => {
                    self.status = Some(status);
                    self.publish_status(false);
                }
                Message::Occupancy { occupancy } => {
                    self.occupancy = Some(occupancy);
                    self.publish_occupancy();
                }
                Message::Event { event } => self.publish_event(&event),
                Message::ZoneOccupancy { zone, occupancy } => {
                    let new = occupancy.is_some() && !self.zones.contains_key(zone.as_str());
                    self.zones.insert(zone.to_string(), occupancy);
                    self.publish_zone(zone.as_str());
                    if new && self.config.homeassistant.discovery && self.counters.connected {
                        // A zone set at runtime gets its entity.
                        self.publish_discovery();
                    }
                }
                Message::Snapshot { image_base64, .. } => self.snapshot(&image_base64),
                Message::Ack(ack) => {
                    let Some(id) = ack.request_id.clone() else {
                        return;
                    };
                    let origin = self.inflight.get_mut(&id).and_then(VecDeque::pop_front);
                    if self.inflight.get(&id).is_some_and(VecDeque::is_empty) {
                        self.inflight.remove(&id);
                    }
                    if let Some(origin) = origin {
                        let stopping = origin.command == "shutdown" && ack.is_success();
                        self.ack(&origin, ack.into_result());
                        if stopping {
                            self.stopped_over_mqtt(&origin);
                        }
                    }
                }
                _ => {}
            },
            Ok(Frame::Request(_)) => tracing::warn!("oriond sent a request; ignored"),
            Err(e) => tracing::warn!(error = e, "unreadable message from oriond"),
        }
    }

    /// An allowed MQTT `shutdown` takes the room dark on purpose: the retained status says
    /// so, and by which request, before availability goes `offline` (under systemd the unit
    /// stays stopped: exit 0 is not a failure).
    fn stopped_over_mqtt(&mut self, origin: &Origin) {
        self.stopped_by = Some(StoppedBy {
            by: "mqtt".into(),
            request_id: origin.request_id.clone(),
            at: now_rfc3339(),
        });
        self.publish_status(true);
    }
}

/// A digest of a command's request id and text, the same in every orion-control process of
/// this build (`DefaultHasher::new` has fixed keys).
fn digest(request_id: &str, text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    request_id.hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

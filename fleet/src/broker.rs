//! The connection: a blocking rumqttc client whose events a thread turns into messages on
//! a channel, so every wait here has a deadline.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// Where the broker is and who we are on it.
#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Orion's topic prefix (`[mqtt] prefix`).
    pub prefix: String,
}

/// A message seen on a subscribed topic.
#[derive(Debug, Clone)]
pub struct Seen {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
    pub at: Instant,
}

enum Note {
    Message(Seen),
    SubAck,
    Failed(String),
}

pub struct Fleet {
    pub broker: Broker,
    client: Client,
    notes: Receiver<Note>,
}

/// How long the broker may take to accept us or a subscription.
const CONNECT: Duration = Duration::from_secs(10);

impl Fleet {
    pub fn connect(broker: Broker) -> Result<Self> {
        let id = format!("orion-fleet-{}-{}", std::process::id(), nanos());
        let mut o = MqttOptions::new(id, broker.host.clone(), broker.port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(1 << 22, 1 << 22);
        if let Some(user) = &broker.username {
            o.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
        }
        let (client, mut connection) = Client::new(o, 4096);
        let (tx, notes) = channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                let note = match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => Note::Message(Seen {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retained: p.retain,
                        at: Instant::now(),
                    }),
                    Ok(Event::Incoming(Packet::SubAck(_))) => Note::SubAck,
                    Ok(Event::Incoming(Packet::ConnAck(_))) => continue,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Note::Failed(e.to_string()));
                        return;
                    }
                };
                if tx.send(note).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            broker,
            client,
            notes,
        })
    }

    /// Subscribes to `filters` and waits until the broker confirmed each.
    pub fn subscribe(&mut self, filters: &[String], seen: &mut Vec<Seen>) -> Result<()> {
        for f in filters {
            self.client
                .subscribe(f, QoS::AtLeastOnce)
                .with_context(|| format!("subscribe to {f}"))?;
        }
        let deadline = Instant::now() + CONNECT;
        let mut acked = 0;
        while acked < filters.len() {
            match self.next(deadline)? {
                Some(Note::SubAck) => acked += 1,
                Some(Note::Message(m)) => seen.push(m),
                Some(Note::Failed(e)) => {
                    bail!("broker {}:{}: {e}", self.broker.host, self.broker.port)
                }
                None => bail!(
                    "broker {}:{} did not confirm the subscriptions in {CONNECT:?}",
                    self.broker.host,
                    self.broker.port
                ),
            }
        }
        Ok(())
    }

    pub fn publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .with_context(|| format!("publish to {topic}"))
    }

    /// The next message before `deadline`, `None` once it passed.
    pub fn next_message(&mut self, deadline: Instant) -> Result<Option<Seen>> {
        loop {
            match self.next(deadline)? {
                Some(Note::Message(m)) => return Ok(Some(m)),
                Some(Note::SubAck) => continue,
                Some(Note::Failed(e)) => {
                    bail!("broker {}:{}: {e}", self.broker.host, self.broker.port)
                }
                None => return Ok(None),
            }
        }
    }

    fn next(&mut self, deadline: Instant) -> Result<Option<Note>> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.notes.recv_timeout(left) {
            Ok(n) => Ok(Some(n)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => bail!("the MQTT connection ended"),
        }
    }

    pub fn topic(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.broker.prefix)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// A request id no other `orion-fleet` run uses.
pub fn request_id() -> String {
    format!("fleet-{:x}-{}", nanos(), std::process::id())
}

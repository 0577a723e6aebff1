//! What a backend sees of each room, and a command sent to one room or a group with each
//! member's ack collected. Rooms are read from their retained messages (availability,
//! status, occupancy); payloads are read as JSON values so a newer room's fields never break
//! an older tool.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::broker::{Fleet, Seen, request_id};

/// One room as the broker shows it.
#[derive(Debug, Clone, Default)]
pub struct Room {
    pub id: String,
    /// `online` / `offline` (retained availability), `None` if none seen.
    pub availability: Option<String>,
    pub model: Option<String>,
    pub rate_hz: Option<f64>,
    pub fps: Option<f64>,
    pub occupied: Option<bool>,
    pub count: Option<u64>,
    pub groups: Vec<String>,
    /// The retained status's own timestamp (RFC 3339).
    pub last_seen: Option<String>,
    pub broker: Option<String>,
}

impl Room {
    fn status(&mut self, v: &Value) {
        self.model = v["detector"]["model"]
            .as_str()
            .or(v["desired"]["model_size"].as_str())
            .map(str::to_string);
        self.rate_hz = v["desired"]["rate_hz"].as_f64();
        self.fps = v["stream"]["fps"].as_f64();
        self.last_seen = v["timestamp"].as_str().map(str::to_string);
        self.groups = v["mqtt"]["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        self.broker = v["mqtt"]["broker"].as_str().map(str::to_string);
        if self.occupied.is_none() {
            self.occupancy(&v["occupancy"]);
        }
    }

    fn occupancy(&mut self, v: &Value) {
        self.occupied = v["occupied"].as_bool();
        self.count = v["count"].as_u64();
    }

    pub fn to_json(&self) -> Value {
        json!({
            "instance_id": self.id, "availability": self.availability, "model": self.model,
            "rate_hz": self.rate_hz, "fps": self.fps, "occupied": self.occupied,
            "count": self.count, "groups": self.groups, "last_seen": self.last_seen,
            "broker": self.broker,
        })
    }
}

/// Who a command goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Room(String),
    Group(String),
}

/// The acks of one command.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub request_id: String,
    /// Each answering room's ack, and how long after the publish it came.
    pub acks: BTreeMap<String, (Value, Duration)>,
    /// Expected rooms that did not answer in time.
    pub missing: Vec<String>,
}

impl Outcome {
    /// Every expected room answered, and with success.
    pub fn all_ok(&self) -> bool {
        self.missing.is_empty() && self.acks.values().all(|(a, _)| a["status"] == "success")
    }

    /// When the last ack came (the time for the whole group).
    pub fn last(&self) -> Option<Duration> {
        self.acks.values().map(|(_, d)| *d).max()
    }
}

/// The instance id in `{prefix}/{kind}/{id}`.
fn id_of<'a>(topic: &'a str, prefix: &str, kind: &str) -> Option<&'a str> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let id = rest.strip_prefix(kind)?.strip_prefix('/')?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

impl Fleet {
    /// The rooms whose retained messages arrive within `wait`.
    pub fn rooms(&mut self, wait: Duration) -> Result<BTreeMap<String, Room>> {
        let kinds = ["availability", "status", "occupancy"];
        let filters: Vec<String> = kinds.iter().map(|k| self.topic(k, "+")).collect();
        let mut seen = Vec::new();
        self.subscribe(&filters, &mut seen)?;
        let deadline = Instant::now() + wait;
        while let Some(m) = self.next_message(deadline)? {
            seen.push(m);
        }
        let mut rooms = BTreeMap::new();
        for m in &seen {
            self.take(&mut rooms, m);
        }
        Ok(rooms)
    }

    fn take(&self, rooms: &mut BTreeMap<String, Room>, m: &Seen) {
        let prefix = &self.broker.prefix;
        for kind in ["availability", "status", "occupancy"] {
            let Some(id) = id_of(&m.topic, prefix, kind) else {
                continue;
            };
            if m.payload.is_empty() {
                continue;
            }
            let room = rooms.entry(id.to_string()).or_insert_with(|| Room {
                id: id.to_string(),
                ..Room::default()
            });
            match kind {
                "availability" => {
                    room.availability = Some(String::from_utf8_lossy(&m.payload).into_owned())
                }
                _ => {
                    let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else {
                        continue;
                    };
                    if kind == "status" {
                        room.status(&v);
                    } else {
                        room.occupancy(&v);
                    }
                }
            }
        }
    }

    /// Publishes `command` with `params` to `target` and collects acks until every room in
    /// `expect` answered or `timeout` passed (with nobody expected, until `timeout`).
    pub fn send(
        &mut self,
        target: &Target,
        command: &str,
        params: Value,
        expect: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<Outcome> {
        let mut early = Vec::new();
        self.subscribe(&[self.topic("health", "+")], &mut early)?;
        let rid = request_id();
        let body = json!({
            "command": command, "params": params, "request_id": rid,
            "timestamp": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        });
        let topic = match target {
            Target::Room(id) => self.topic("control", id),
            Target::Group(g) => self.topic("control", &format!("group/{g}")),
        };
        let sent = Instant::now();
        self.publish(&topic, body.to_string().into_bytes())?;
        let deadline = sent + timeout;
        let mut acks = BTreeMap::new();
        while expect.is_empty() || !expect.iter().all(|id| acks.contains_key(id)) {
            let Some(m) = self.next_message(deadline)? else {
                break;
            };
            let Some(id) = id_of(&m.topic, &self.broker.prefix, "health") else {
                continue;
            };
            let Ok(ack) = serde_json::from_slice::<Value>(&m.payload) else {
                continue;
            };
            if ack["request_id"] == rid.as_str() {
                // A redelivered duplicate keeps the first.
                acks.entry(id.to_string())
                    .or_insert((ack, m.at.saturating_duration_since(sent)));
            }
        }
        let missing = expect
            .iter()
            .filter(|id| !acks.contains_key(*id))
            .cloned()
            .collect();
        Ok(Outcome {
            request_id: rid,
            acks,
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_come_from_the_topic_level_after_the_kind() {
        assert_eq!(
            id_of("care/status/room-1", "care", "status"),
            Some("room-1")
        );
        assert_eq!(id_of("a/b/status/r", "a/b", "status"), Some("r"));
        assert_eq!(id_of("care/status/room-1/x", "care", "status"), None);
        assert_eq!(id_of("care/statusx/room-1", "care", "status"), None);
        assert_eq!(id_of("care/status/", "care", "status"), None);
        assert_eq!(id_of("other/status/r", "care", "status"), None);
    }
}

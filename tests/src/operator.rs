//! An operator's backend, as tests and benchmarks must see Orion: one MQTT 5 client
//! subscribed to `{prefix}/#` at QoS 1 (so it receives acks, status, availability and every
//! detection), publishing commands at QoS 1, with each message's arrival time recorded the
//! moment the client's event loop hands it over.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::{Value, json};

/// One message as the operator received it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub topic: String,
    pub payload: String,
    /// The payload's bytes when they are not text (a snapshot's JPEG).
    pub raw: Option<Vec<u8>>,
    pub retained: bool,
    pub at: Instant,
    pub at_unix: SystemTime,
}

impl Arrival {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.payload).ok()
    }
}

pub struct Operator {
    client: Client,
    rx: Receiver<Arrival>,
    /// Everything received so far, in order.
    pub seen: Vec<Arrival>,
    pub prefix: String,
    pub instance: String,
    next: u64,
    tag: String,
}

impl Operator {
    /// Connects to the broker on `127.0.0.1:port`, subscribes to `{prefix}/#` at QoS 1 and
    /// waits until the broker confirmed the subscription.
    pub fn connect(port: u16, prefix: &str, instance: &str) -> Result<Self> {
        let tag = format!("op-{}-{}", std::process::id(), crate::unique());
        let mut options = MqttOptions::new(tag.clone(), "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(Some(8 << 20));
        let (client, mut connection) = Client::new(options, 4096);
        let (tx, rx) = channel();
        let (subscribed_tx, subscribed) = channel();
        std::thread::Builder::new()
            .name("operator".into())
            .spawn(move || {
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let arrival = Arrival {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                raw: std::str::from_utf8(&p.payload)
                                    .is_err()
                                    .then(|| p.payload.to_vec()),
                                retained: p.retain,
                                at: Instant::now(),
                                at_unix: SystemTime::now(),
                            };
                            if tx.send(arrival).is_err() {
                                return;
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.send(());
                        }
                        Ok(_) => {}
                        // The broker restarts in some tests: keep reconnecting.
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })?;
        client
            .subscribe(format!("{prefix}/#"), QoS::AtLeastOnce)
            .context("subscribe")?;
        subscribed
            .recv_timeout(Duration::from_secs(10))
            .context("the broker did not confirm the subscription")?;
        Ok(Self {
            client,
            rx,
            seen: Vec::new(),
            prefix: prefix.to_string(),
            instance: instance.to_string(),
            next: 0,
            tag,
        })
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("{}/{kind}/{}", self.prefix, self.instance)
    }

    pub fn detection_topic(&self) -> String {
        format!(
            "{}/inferences/{}/person_detection",
            self.prefix, self.instance
        )
    }

    /// Takes whatever has arrived, waiting at most `timeout` for the first message.
    pub fn pull(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(a) => {
                self.seen.push(a);
                while let Ok(a) = self.rx.try_recv() {
                    self.seen.push(a);
                }
                true
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Publishes `{"command", "params", "request_id"}` at QoS 1; returns the request id and
    /// when it was handed to the client.
    pub fn send(&mut self, command: &str, params: Value) -> Result<(String, Instant)> {
        self.next += 1;
        let rid = format!("{}-{}", self.tag, self.next);
        let body = json!({"command": command, "params": params, "request_id": rid});
        let t = Instant::now();
        self.client
            .publish(
                self.topic("control"),
                QoS::AtLeastOnce,
                false,
                body.to_string().into_bytes(),
            )
            .context("publish a command")?;
        Ok((rid, t))
    }

    /// Publishes `payload` to any topic at QoS `qos` (the broker's own round trip, for
    /// baselines).
    pub fn publish(&mut self, topic: &str, qos: u8, payload: Vec<u8>) -> Result<()> {
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        self.client
            .publish(topic, qos, false, payload)
            .context("publish")
    }

    /// Publishes raw bytes to the command topic at QoS 1.
    pub fn send_raw(&mut self, payload: Vec<u8>) -> Result<()> {
        self.client
            .publish(self.topic("control"), QoS::AtLeastOnce, false, payload)
            .context("publish")
    }

    /// The first message from index `from` on that `check` accepts, waiting up to
    /// `timeout`; its index.
    pub fn wait_from(
        &mut self,
        what: &str,
        from: usize,
        timeout: Duration,
        mut check: impl FnMut(&Arrival) -> bool,
    ) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut i = from;
        loop {
            while i < self.seen.len() {
                if check(&self.seen[i]) {
                    return Ok(i);
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no message for {what} within {timeout:?}");
            }
            self.pull(left.min(Duration::from_millis(100)));
        }
    }

    /// The ack of request `rid` (on the health topic).
    pub fn ack(&mut self, rid: &str, timeout: Duration) -> Result<(Value, Instant)> {
        let health = self.topic("health");
        let i = self.wait_from(&format!("the ack of {rid}"), 0, timeout, |a| {
            a.topic == health && a.json().is_some_and(|v| v["request_id"] == rid)
        })?;
        let a = &self.seen[i];
        Ok((a.json().unwrap_or(Value::Null), a.at))
    }

    /// Sends a command and waits for its ack; the ack and the time from send to receipt.
    pub fn command(
        &mut self,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<(Value, Duration)> {
        let (rid, sent) = self.send(command, params)?;
        let (ack, at) = self.ack(&rid, timeout)?;
        Ok((ack, at.duration_since(sent)))
    }

    /// Indices of detection messages from `from` on.
    pub fn detections_from(&self, from: usize) -> Vec<usize> {
        let topic = self.detection_topic();
        (from..self.seen.len())
            .filter(|&i| self.seen[i].topic == topic)
            .collect()
    }

    /// Waits for the first detection arriving from `from` on whose frame was captured after
    /// `after` (a kill, a camera's return): its index.
    pub fn wait_fresh_detection(
        &mut self,
        from: usize,
        after: SystemTime,
        timeout: Duration,
    ) -> Result<usize> {
        let topic = self.detection_topic();
        self.wait_from("a detection of a later frame", from, timeout, |a| {
            a.topic == topic
                && a.json()
                    .and_then(|d| humantime::parse_rfc3339_weak(d["capture_ts"].as_str()?).ok())
                    .is_some_and(|c| c > after)
        })
    }

    /// The detections from `from` on as (frame_seq, capture epoch, capture time), in frame
    /// order, each frame once.
    pub fn frames_from(&self, from: usize) -> Vec<(u64, u64, SystemTime)> {
        let mut frames: Vec<(u64, u64, SystemTime)> = self
            .detections_from(from)
            .into_iter()
            .filter_map(|i| {
                let d = self.seen[i].json()?;
                let seq = d["frame_seq"].as_u64()?;
                let epoch = d["data"]["metadata"]["capture_epoch"].as_u64()?;
                let at = humantime::parse_rfc3339_weak(d["capture_ts"].as_str()?).ok()?;
                Some((seq, epoch, at))
            })
            .collect();
        frames.sort_by_key(|f| f.0);
        frames.dedup_by_key(|f| f.0);
        frames
    }

    /// Where one capture handed the ring to the next in the detections from `from` on: the
    /// capture-time gap from the old writer's last detected frame to the new one's first
    /// (`None` if the epoch did not move).
    pub fn epoch_switch_gap(&self, from: usize) -> Option<Duration> {
        self.frames_from(from)
            .windows(2)
            .find(|w| w[1].1 != w[0].1)
            .and_then(|w| w[1].2.duration_since(w[0].2).ok())
    }

    /// Waits until `n` detections arrived from index `from` on.
    pub fn wait_detections(&mut self, from: usize, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.detections_from(from).len() < n {
            if Instant::now() > deadline {
                bail!(
                    "{} of {n} detections within {timeout:?}",
                    self.detections_from(from).len()
                );
            }
            self.pull(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

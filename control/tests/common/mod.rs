//! A real mosquitto, a real oriond with orion-control on it, and a client watching
//! `care/#`: what every MQTT test of orion-control starts from.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use orion_tests::mqtt::{Mosquitto, Watch, publish};
use orion_tests::oriond::{Oriond, START_TIMEOUT};
use serde_json::{Value, json};

pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// `[mqtt] allowed_commands` with every MQTT command, the guarded ones too.
pub fn allow_all() -> String {
    format!(
        "allowed_commands = {:?}",
        orion_protocol::command::MQTT_COMMANDS
    )
}

pub struct Rig {
    pub broker: Mosquitto,
    pub o: Oriond,
    pub watch: Watch,
}

impl Rig {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// With `extra` config lines (in `[mqtt]`).
    pub fn start_with(extra: &str) -> Self {
        let broker = Mosquitto::start().unwrap();
        let watch = Watch::start(broker.port, "care/#").unwrap();
        let o = Oriond::start(Some(broker.port), extra).unwrap();
        let mut rig = Self { broker, o, watch };
        rig.online();
        rig
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("care/{kind}/{}", self.o.instance)
    }

    pub fn online(&mut self) {
        let topic = self.topic("availability");
        self.watch
            .wait_for("online", START_TIMEOUT, |s| {
                s.topic == topic && s.payload == "online"
            })
            .unwrap();
    }

    /// Publishes a command (as text) and returns its ack (found by request id).
    pub fn send_raw(&mut self, payload: &str, request_id: &str) -> Value {
        publish(self.broker.port, &self.topic("control"), payload, &[]).unwrap();
        let health = self.topic("health");
        let rid = request_id.to_string();
        let ack = self
            .watch
            .wait_for(&format!("ack {rid}"), ACK_WAIT, |s| {
                s.topic == health && s.json().is_some_and(|v| v["request_id"] == rid.as_str())
            })
            .unwrap();
        ack.json().unwrap()
    }

    pub fn send(&mut self, command: &str, params: Value) -> Value {
        let rid = format!("r-{command}-{}", self.watch.seen.len());
        let body = json!({"command": command, "params": params, "request_id": rid});
        let ack = self.send_raw(&body.to_string(), &rid);
        assert_eq!(ack["command_ack"], command, "{ack}");
        assert!(ack["timestamp"].as_str().unwrap().ends_with('Z'), "{ack}");
        ack
    }

    /// Sends a marker command and waits for its ack: acks go out in order, so every ack of
    /// an earlier command has arrived by then (a duplicate too, if there were one).
    pub fn drain(&mut self) {
        let rid = format!("marker-{}", self.watch.seen.len());
        let body = json!({"command": "get_status", "request_id": rid});
        self.send_raw(&body.to_string(), &rid);
    }

    pub fn ok(&mut self, command: &str, params: Value) -> Value {
        let ack = self.send(command, params);
        assert_eq!(ack["status"], "success", "{ack}");
        ack["data"].clone()
    }
}

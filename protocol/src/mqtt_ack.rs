//! The acknowledgement as MQTT carries it (docs/mqtt.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::{AckError, AckStatus, ErrorKind};

/// The acknowledgement as MQTT carries it (`{prefix}/health/{id}`, docs/mqtt.md): the
/// [`Ack`] of the socket plus the command's name as `command_ack`, the instance and the
/// time; `redelivered` only on an answer repeated for a broker's redelivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MqttAck {
    pub command_ack: String,
    pub status: AckStatus,
    pub instance_id: String,
    pub request_id: Option<String>,
    pub data: Value,
    pub error: Option<String>,
    pub error_kind: Option<ErrorKind>,
    /// RFC 3339, UTC.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
}

impl MqttAck {
    /// The MQTT ack of `command` with `result`, stamped `timestamp`.
    pub fn new(
        command: &str,
        instance_id: &str,
        request_id: Option<String>,
        result: Result<Value, AckError>,
        timestamp: String,
    ) -> Self {
        let (status, data, error, error_kind) = match result {
            Ok(data) => (AckStatus::Success, data, None, None),
            Err(e) => (AckStatus::Error, Value::Null, Some(e.message), Some(e.kind)),
        };
        Self {
            command_ack: command.to_string(),
            status,
            instance_id: instance_id.to_string(),
            request_id,
            data,
            error,
            error_kind,
            timestamp,
            redelivered: false,
        }
    }
}

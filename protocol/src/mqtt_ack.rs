//! The acknowledgement as MQTT carries it (docs/mqtt.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ack::{Ack, AckError, AckStatus, ErrorKind};

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
    /// The group the command was sent to (`{prefix}/control/group/{group}`); absent for a
    /// command to this room alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
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
        // The socket's ack decides status, data and error; MQTT adds who and when.
        let ack = Ack::new(command, request_id, result);
        Self {
            command_ack: ack.command,
            status: ack.status,
            instance_id: instance_id.to_string(),
            request_id: ack.request_id,
            data: ack.data,
            error: ack.error,
            error_kind: ack.error_kind,
            timestamp,
            redelivered: false,
            group: None,
        }
    }
}

//! The answer to one request, in the one shape MQTT, oriond's socket and the children
//! share: `{"type": "ack", "command", "status": "success"|"error", "request_id", "data",
//! "error", "error_kind"}`. The error's kind travels with it ([`ErrorKind`]), never guessed
//! from its text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Outcome of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Success,
    Error,
}

/// Why a command failed, stable across releases: clients branch on this, never on the
/// message text (orionctl's exit codes come from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Unreadable, too large, or a parameter out of range.
    BadRequest,
    /// No such command.
    UnknownCommand,
    /// No such process, or one this configuration does not run.
    UnknownProcess,
    /// The process that must carry it out is not RUNNING.
    Unavailable,
    /// It was tried and failed (a model that does not load, a child that exited).
    Failed,
    /// No answer in time.
    Timeout,
    /// Older than `mqtt.command_max_age_s`.
    Expired,
    /// Too many in flight; try again.
    Busy,
    /// oriond is shutting down.
    ShuttingDown,
    /// Not allowed from where it came.
    Refused,
    /// Sent with the MQTT retain flag: the broker would deliver it again on every
    /// reconnect, so it is never applied.
    Retained,
}

/// A failed command: its kind and a message naming the field or the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AckError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
}

/// A failure without a more precise kind.
impl From<String> for AckError {
    fn from(message: String) -> Self {
        Self::new(ErrorKind::Failed, message)
    }
}

impl std::fmt::Display for AckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The answer to one request (on the socket it travels as `Message::Ack`, tagged
/// `"type": "ack"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub command: String,
    pub status: AckStatus,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
}

impl Ack {
    pub fn new(command: &str, request_id: Option<String>, result: Result<Value, AckError>) -> Self {
        let (status, data, error, error_kind) = match result {
            Ok(data) => (AckStatus::Success, data, None, None),
            Err(e) => (AckStatus::Error, Value::Null, Some(e.message), Some(e.kind)),
        };
        Self {
            command: command.to_string(),
            status,
            request_id,
            data,
            error,
            error_kind,
        }
    }

    pub fn is_success(&self) -> bool {
        self.status == AckStatus::Success
    }

    /// The outcome as a result: data on success, the error otherwise.
    pub fn into_result(self) -> Result<Value, AckError> {
        match self.status {
            AckStatus::Success => Ok(self.data),
            AckStatus::Error => Err(AckError::new(
                self.error_kind.unwrap_or(ErrorKind::Failed),
                self.error.unwrap_or_else(|| "failed".into()),
            )),
        }
    }
}

//! Everything that travels on oriond's socket, typed. A frame is either a **request** (the
//! MQTT command shape, `{"command", "params", "request_id"}`; see [`crate::command`]) or a
//! **message** tagged by `type` ([`Message`]): a child's hello and status reports, acks,
//! detections, and the status oriond hands orion-control.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capture::CaptureStatus;
use crate::command::{self, Ack, Command, ProcessName};
use crate::detection::DetectionMessage;
use crate::detector::DetectorStatus;

/// A tagged message (`"type": ...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// A child introduces itself (oriond checks `pid` against the socket's peer).
    Hello { name: ProcessName, pid: u32 },
    /// The answer to one request.
    Ack(Ack),
    /// A child's one signal that it is ready, sent once per process: orion-control after
    /// its hello; the capture once it writes the ring (after its first report, or after it
    /// took the ring over); the detector once its worker has loaded the model and it
    /// serves (at once, or after it took over). oriond then brings it to the desired state.
    Ready,
    /// The capture's stream report.
    CaptureStatus(CaptureStatus),
    /// The detector's report.
    DetectorStatus(DetectorStatus),
    /// orion-control's MQTT counters, with every status it publishes: oriond keeps the
    /// last in its status (`mqtt`), so `orionctl` and the metrics see them too.
    ControlStatus(crate::status::MqttCounters),
    /// One processed frame, on its way to MQTT: orion-control stamps its publish time and
    /// latency when it publishes it, on the clock of `captured_unix_ns`.
    Detection {
        detection: DetectionMessage,
        /// The frame's capture time, ns since the Unix epoch (the ring's realtime stamp).
        captured_unix_ns: u64,
    },
    /// oriond's status for orion-control to publish (retained).
    Status { status: Box<crate::status::Status> },
    /// oriond's room occupancy for orion-control to publish (retained), on every change.
    Occupancy {
        occupancy: crate::occupancy::Occupancy,
    },
    /// A care event for orion-control to publish (QoS 1, not retained).
    Event { event: crate::event::CareEvent },
    /// A zone's occupancy for orion-control to publish (retained), on every change;
    /// `None`: the zone is gone (its retained message is cleared).
    ZoneOccupancy {
        zone: crate::zone::ZoneName,
        occupancy: Option<crate::occupancy::ZoneOccupancy>,
    },
    /// oriond to a requester after a `get_snapshot`'s ack (and to orion-control, unasked,
    /// when occupancy changes with `[snapshot] on_occupancy_change`): the encoded image,
    /// base64.
    Snapshot {
        request_id: Option<String>,
        format: crate::snapshot::ImageFormat,
        frame_seq: u64,
        image_base64: String,
    },
    /// oriond to a process in standby: the one you stand in for is gone; take its place.
    /// A capture claims the ring and writes (its held frame at once, if it is newer than
    /// the ring's newest); a detector starts serving (paused until oriond re-applied the
    /// desired state).
    TakeOver,
    /// oriond to the detector: whether the box can afford stand-ins now (its memory gate,
    /// `[memory]`). While not, the detector keeps no spare worker.
    StandIns { allowed: bool },
}

/// One frame from the socket, decoded.
#[derive(Debug)]
pub enum Frame {
    Request(Command),
    Message(Box<Message>),
}

/// Whether `text` is oriond's [`Message::TakeOver`].
pub fn is_take_over(text: &str) -> bool {
    matches!(decode(text.as_bytes()), Ok(Frame::Message(m)) if matches!(*m, Message::TakeOver))
}

/// Decodes a frame's body: a JSON object with a `type` is a [`Message`], one without is a
/// request. Anything else is an error saying why (for an `unknown` error ack).
pub fn decode(body: &[u8]) -> Result<Frame, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed message: {e}"))?;
    if !value.is_object() {
        return Err("a message must be a JSON object".into());
    }
    if value.get("type").is_some() {
        return serde_json::from_value::<Message>(value)
            .map(|m| Frame::Message(Box::new(m)))
            .map_err(|e| format!("malformed message: {e}"));
    }
    Ok(Frame::Request(command::parse_value(value)))
}

/// The body of a message, for the socket.
pub fn encode(message: &Message) -> Vec<u8> {
    // Serializing these types cannot fail (string keys, finite structure).
    serde_json::to_vec(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Action, ErrorKind};

    #[test]
    fn frames_decode_to_requests_or_messages() {
        let hello = encode(&Message::Hello {
            name: ProcessName::Detector,
            pid: 7,
        });
        assert_eq!(
            String::from_utf8_lossy(&hello),
            r#"{"type":"hello","name":"detector","pid":7}"#
        );
        match decode(&hello).unwrap() {
            Frame::Message(m) => assert!(matches!(*m, Message::Hello { pid: 7, .. })),
            Frame::Request(_) => panic!("a hello is a message"),
        }
        let ack = Message::Ack(Ack::new(
            "x",
            Some("r".into()),
            Err(command::AckError::new(ErrorKind::Busy, "later")),
        ));
        let text = String::from_utf8(encode(&ack)).unwrap();
        assert!(
            text.contains(r#""type":"ack""#) && text.contains(r#""error_kind":"busy""#),
            "{text}"
        );
        assert_eq!(
            match decode(text.as_bytes()).unwrap() {
                Frame::Message(m) => *m,
                Frame::Request(_) => panic!(),
            },
            ack
        );
        match decode(br#"{"command":"pause_inference","request_id":"1"}"#).unwrap() {
            Frame::Request(c) => assert_eq!(c.action, Ok(Action::Pause)),
            Frame::Message(_) => panic!("no type: a request"),
        }
        assert!(decode(b"[1]").unwrap_err().contains("JSON object"));
        assert!(
            decode(br#"{"type":"dance"}"#)
                .unwrap_err()
                .starts_with("malformed")
        );
    }
}

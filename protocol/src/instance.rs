//! The instance id and the names derived from it — in one place, so the ring, the tensor
//! buffer, the socket, the state file and the MQTT client id of an instance can never be
//! spelled two ways.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An instance id: 1..=64 of `A-Z`, `a-z`, `0-9`, `_`, `-` (the seed's `node_001` among
/// them). It names everything of one room, so it may hold only what every one of those
/// names accepts as it is: an MQTT topic level and client id, a systemd instance name
/// (`oriond@ID`) without escaping, a file name, a Home Assistant node id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be 1..={max} characters of A-Z, a-z, 0-9, _ and - (what MQTT topics, systemd instance names, file names and Home Assistant ids all accept), got {got:?}",
    max = InstanceId::MAX_LEN
)]
pub struct InstanceIdError {
    got: String,
}

/// Whether `name` is 1..=[`InstanceId::MAX_LEN`] of `A-Z`, `a-z`, `0-9`, `_`, `-`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= InstanceId::MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl InstanceId {
    pub const MAX_LEN: usize = 64;

    pub fn new(id: &str) -> Result<Self, InstanceIdError> {
        if is_name(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(InstanceIdError {
                got: id.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The frame ring's label (its memfd name; a named ring is `/` + this).
    pub fn ring_label(&self) -> String {
        format!("orion-{}-frames", self.0)
    }

    /// The tensor buffer's label (the detector's memfd).
    pub fn tensors_label(&self) -> String {
        format!("orion-{}-tensors", self.0)
    }

    /// oriond's socket in `dir`: `oriond-{id}.sock`.
    pub fn socket_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("oriond-{}.sock", self.0))
    }

    /// The saved runtime state in `dir`: `desired-{id}.json`.
    pub fn state_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("desired-{}.json", self.0))
    }

    /// The MQTT commands oriond answered lately, in `dir`: `answered-{id}.json`.
    pub fn answered_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("answered-{}.json", self.0))
    }

    /// The care events open when oriond stopped, in `dir`: `events-{id}.json`.
    pub fn events_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("events-{}.json", self.0))
    }

    /// The embedded broker's config in `dir`: `mosquitto-{id}.conf`.
    pub fn broker_conf_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("mosquitto-{}.conf", self.0))
    }

    /// The default MQTT client id: `orion-{id}`.
    pub fn mqtt_client_id(&self) -> String {
        format!("orion-{}", self.0)
    }
}

impl TryFrom<String> for InstanceId {
    type Error = InstanceIdError;
    fn try_from(id: String) -> Result<Self, InstanceIdError> {
        Self::new(&id)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

/// A group of rooms (a floor, a wing: `[mqtt] groups`), addressed together on
/// `{prefix}/control/group/{group}`. Spelled like an instance id: one MQTT topic level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    pub fn new(name: &str) -> Result<Self, InstanceIdError> {
        if is_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(InstanceIdError {
                got: name.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupName {
    type Error = InstanceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<GroupName> for String {
    fn from(g: GroupName) -> String {
        g.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for InstanceId {
    type Err = InstanceIdError;
    fn from_str(s: &str) -> Result<Self, InstanceIdError> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_their_names() {
        let id = InstanceId::new("room-2").unwrap();
        assert_eq!(id.ring_label(), "orion-room-2-frames");
        assert_eq!(id.tensors_label(), "orion-room-2-tensors");
        assert_eq!(
            id.socket_path(Path::new("/run/orion")),
            Path::new("/run/orion/oriond-room-2.sock")
        );
        assert_eq!(id.mqtt_client_id(), "orion-room-2");
        for good in ["node_001", "Room-2", "a", &"Z".repeat(64)] {
            assert_eq!(InstanceId::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a+b",
            "a#b",
            "a.b",
            "a:b",
            "é",
            &"a".repeat(65),
        ] {
            let e = InstanceId::new(bad).unwrap_err().to_string();
            assert!(e.contains("A-Z, a-z, 0-9, _ and -"), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<InstanceId>("\"../x\"").is_err());
    }
}

//! A new install's `instance_id`, from the machine: two boxes left at one default id would
//! share an MQTT client id, topics and Home Assistant device and evict each other from the
//! broker. The shipped config sets none; `orion-setup` writes one into the config file
//! unless the file already has one: the hostname (`{hostname}-{file}` for a second room's
//! file such as room-2.toml), or, where the hostname is one many boxes share (localhost,
//! raspberrypi, debian, …), `orion-` and the start of /etc/machine-id.

use std::path::Path;

use anyhow::{Context, Result, bail};
use orion_protocol::InstanceId;

/// Hostnames images ship with: many boxes have them, so they identify none.
const SHARED_HOSTNAMES: [&str; 9] = [
    "localhost",
    "debian",
    "raspberrypi",
    "ubuntu",
    "orion",
    "dietpi",
    "armbian",
    "orangepi",
    "rockpi",
];

/// Makes sure the config at `path` names its instance; what was found or done.
pub fn ensure(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not TOML", path.display()))?;
    if let Some(id) = table.get("instance_id") {
        return Ok(format!("instance_id {id} (set in {})", path.display()));
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let (id, from) = derive(&hostname, &machine_id, room_file(path))?;
    std::fs::write(path, with_instance_id(&text, &id, from)).with_context(|| {
        format!(
            "cannot write instance_id = \"{id}\" into {}",
            path.display()
        )
    })?;
    Ok(format!(
        "instance_id \"{id}\" (from this machine's {from}) written into {}",
        path.display()
    ))
}

/// The name of a second room's file (`room-2` of /etc/orion/room-2.toml); none for the
/// box's main config, orion.toml.
fn room_file(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    (stem != "orion").then_some(stem)
}

/// An id from the hostname, else from the machine id; and which it came from.
fn derive(
    hostname: &str,
    machine_id: &str,
    room: Option<String>,
) -> Result<(String, &'static str)> {
    let host = slug(hostname);
    let suffix = room.map(|r| format!("-{}", slug(&r))).unwrap_or_default();
    if !host.is_empty() && !SHARED_HOSTNAMES.contains(&host.as_str()) {
        let id = clip(&format!("{host}{suffix}"));
        if InstanceId::new(&id).is_ok() {
            return Ok((id, "hostname"));
        }
    }
    let machine: String = machine_id
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    if machine.len() < 12 {
        bail!(
            "the hostname {:?} is shared by many boxes and there is no /etc/machine-id: \
             set instance_id in the config yourself",
            hostname.trim()
        );
    }
    Ok((clip(&format!("orion-{machine}{suffix}")), "machine-id"))
}

/// Lower case; anything but a-z, 0-9, `_` and `-` becomes `-`; no `-` at the ends.
fn slug(s: &str) -> String {
    let mapped: String = s
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').to_string()
}

fn clip(id: &str) -> String {
    id.chars()
        .take(InstanceId::MAX_LEN)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// `text` with `instance_id` set: top-level keys come before the first table, so the line
/// goes there (after the file's opening comments).
fn with_instance_id(text: &str, id: &str, from: &str) -> String {
    let line =
        format!("instance_id = \"{id}\"   # set by orion-setup from this machine's {from}\n");
    let mut out = String::with_capacity(text.len() + line.len());
    let mut placed = false;
    for l in text.split_inclusive('\n') {
        let key_or_table =
            l.trim_start().starts_with('[') || l.contains('=') && !l.trim_start().starts_with('#');
        if !placed && key_or_table {
            out.push_str(&line);
            placed = true;
        }
        out.push_str(l);
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MACHINE: &str = "4f1c9e0a7b2d4c55a1e2b3c4d5e6f708\n";

    #[test]
    fn a_named_box_takes_its_hostname_and_a_stock_one_its_machine_id() {
        assert_eq!(
            derive("Care-Box.7\n", MACHINE, None).unwrap(),
            ("care-box-7".into(), "hostname")
        );
        assert_eq!(
            derive("raspberrypi\n", MACHINE, None).unwrap(),
            ("orion-4f1c9e0a7b2d".into(), "machine-id")
        );
        assert_eq!(
            derive("ward3", MACHINE, Some("room-2".into())).unwrap().0,
            "ward3-room-2"
        );
        assert!(derive("localhost", "", None).is_err());
        let long = "a".repeat(100);
        assert_eq!(
            derive(&long, MACHINE, None).unwrap().0.len(),
            InstanceId::MAX_LEN
        );
    }

    #[test]
    fn the_id_goes_before_the_first_key_or_table_and_the_file_stays_valid() {
        let text = "# Orion\n# comments\n\nroom_id = \"Room 1\"\n[camera]\nsource = \"test://\"\n";
        let out = with_instance_id(text, "ward3", "hostname");
        assert!(
            out.starts_with("# Orion\n# comments\n\ninstance_id = \"ward3\""),
            "{out}"
        );
        let table: toml::Table = out.parse().unwrap();
        assert_eq!(table["instance_id"].as_str(), Some("ward3"));
        assert_eq!(table["camera"]["source"].as_str(), Some("test://"));
        let only_tables = with_instance_id("[camera]\nsource = \"x\"\n", "a", "hostname");
        assert!(only_tables.starts_with("instance_id = \"a\""));
    }

    #[test]
    fn a_config_with_an_id_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("orion-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("orion.toml");
        std::fs::write(
            &path,
            "instance_id = \"mine\"\n[camera]\nsource = \"test://\"\n",
        )
        .unwrap();
        let said = ensure(&path).unwrap();
        assert!(said.contains("\"mine\""), "{said}");
        std::fs::write(&path, "[camera]\nsource = \"test://\"\n").unwrap();
        let said = ensure(&path).unwrap();
        let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let id = table["instance_id"].as_str().unwrap();
        assert!(InstanceId::new(id).is_ok() && said.contains(id), "{said}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

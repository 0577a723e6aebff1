//! `docs/mqtt.md`, the command reference, checked against the code it describes: the
//! command catalog (every MQTT command has a section, each example request parses to that
//! command, each example ack has the ack's shape), what MQTT may send by default, the error
//! kinds, the topics and their default QoS. Editing the catalog without the page (or the
//! page without the catalog) fails here.

use std::collections::BTreeSet;

use orion_config::Config;
use orion_protocol::command::{self, ErrorKind, MQTT_COMMANDS};
use serde_json::Value;

use crate::topics::Topics;

const DOC: &str = include_str!("../../docs/mqtt.md");

/// Every error kind; a new variant fails to compile here until it is listed (and then
/// fails the test until the page names it).
fn all_kinds() -> Vec<ErrorKind> {
    let all = [
        ErrorKind::BadRequest,
        ErrorKind::UnknownCommand,
        ErrorKind::UnknownProcess,
        ErrorKind::Unavailable,
        ErrorKind::Failed,
        ErrorKind::Timeout,
        ErrorKind::Expired,
        ErrorKind::Busy,
        ErrorKind::ShuttingDown,
        ErrorKind::Refused,
        ErrorKind::Retained,
    ];
    for k in all {
        match k {
            ErrorKind::BadRequest
            | ErrorKind::UnknownCommand
            | ErrorKind::UnknownProcess
            | ErrorKind::Unavailable
            | ErrorKind::Failed
            | ErrorKind::Timeout
            | ErrorKind::Expired
            | ErrorKind::Busy
            | ErrorKind::ShuttingDown
            | ErrorKind::Refused
            | ErrorKind::Retained => {}
        }
    }
    all.to_vec()
}

fn kind_name(k: ErrorKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The text of `## title` up to the next `## `.
fn chapter(title: &str) -> &'static str {
    let head = format!("\n## {title}\n");
    let start = DOC.find(&head).map(|i| i + head.len());
    let start = start.unwrap_or_else(|| panic!("docs/mqtt.md has no '## {title}'"));
    let rest = &DOC[start..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// `### `name`` subsections of a chapter: name → text.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            out.push((name.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The fenced blocks of `text` whose info string is `info`.
fn blocks(text: &str, info: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Inside a fence: `Some(Some(body))` when it is one of ours, `Some(None)` otherwise.
    let mut fence: Option<Option<String>> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut fence {
            None if trimmed.starts_with("```") => {
                let ours = trimmed.trim_start_matches('`') == info;
                fence = Some(ours.then(String::new));
            }
            None => {}
            Some(body) if trimmed == "```" => {
                out.extend(body.take());
                fence = None;
            }
            Some(Some(body)) => {
                body.push_str(line);
                body.push('\n');
            }
            Some(None) => {}
        }
    }
    out
}

/// Table rows (cells, trimmed) whose first cell is a backticked word.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.trim_matches('`')
}

fn check_ack(name: &str, text: &str) {
    let ack: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: ack: {e}"));
    let allowed: BTreeSet<&str> = [
        "command_ack",
        "status",
        "instance_id",
        "request_id",
        "data",
        "error",
        "error_kind",
        "timestamp",
        "redelivered",
    ]
    .into();
    let obj = ack.as_object().unwrap_or_else(|| panic!("{name}: ack"));
    for key in obj.keys() {
        assert!(allowed.contains(key.as_str()), "{name}: ack key {key}");
    }
    for key in ["command_ack", "status", "instance_id", "timestamp", "data"] {
        assert!(obj.contains_key(key), "{name}: ack lacks {key}");
    }
    assert_eq!(ack["command_ack"], name, "{name}");
    let id = ack["instance_id"].as_str().unwrap_or_default();
    assert!(orion_protocol::InstanceId::new(id).is_ok(), "{name}: {id}");
    let ts = ack["timestamp"].as_str().unwrap_or_default();
    assert!(
        humantime::parse_rfc3339(ts).is_ok(),
        "{name}: timestamp {ts}"
    );
    match ack["status"].as_str() {
        Some("success") => {
            assert!(
                ack["error"].is_null() && ack["error_kind"].is_null(),
                "{name}"
            );
        }
        Some("error") => {
            assert!(ack["data"].is_null(), "{name}: an error carries no data");
            assert!(ack["error"].is_string(), "{name}");
            let kind: Result<ErrorKind, _> = serde_json::from_value(ack["error_kind"].clone());
            assert!(kind.is_ok(), "{name}: error_kind {}", ack["error_kind"]);
        }
        other => panic!("{name}: status {other:?}"),
    }
}

#[test]
fn every_mqtt_command_has_a_section_with_a_request_that_parses_and_an_ack() {
    let found = sections(chapter("Commands"));
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names, MQTT_COMMANDS,
        "sections of '## Commands', in catalog order"
    );
    for (name, body) in &found {
        let requests = blocks(body, "json request");
        let acks = blocks(body, "json ack");
        assert_eq!(
            (requests.len(), acks.len()),
            (1, 1),
            "{name}: one request, one ack"
        );
        let cmd = command::parse(requests[0].trim());
        let action = cmd
            .action
            .unwrap_or_else(|e| panic!("{name}: the example request is refused: {e}"));
        assert_eq!(action.name(), name);
        assert!(!action.is_local_only(), "{name}");
        check_ack(name, &acks[0]);
        // The kinds named after "Errors:" exist.
        let errors = body
            .split("Errors:")
            .nth(1)
            .and_then(|t| t.split("\n\n").next())
            .unwrap_or_else(|| panic!("{name}: no 'Errors:' line"));
        let kinds: BTreeSet<String> = all_kinds().into_iter().map(kind_name).collect();
        for word in errors.split('`').skip(1).step_by(2) {
            assert!(kinds.contains(word), "{name}: Errors names {word:?}");
        }
    }
    for ack in blocks(chapter("A malformed command"), "json ack") {
        check_ack("unknown", &ack);
    }
}

#[test]
fn the_summary_table_says_what_mqtt_may_send_by_default() {
    let config =
        Config::parse("[camera]\nsource = \"test://ball\"\n").unwrap_or_else(|e| panic!("{e}"));
    let table: Vec<Vec<String>> = rows(chapter("Commands"))
        .into_iter()
        .filter(|r| r.len() == 4)
        .collect();
    let names: Vec<&str> = table.iter().map(|r| unquote(&r[0])).collect();
    assert_eq!(names, MQTT_COMMANDS);
    let yes = |b: bool| if b { "yes" } else { "no" };
    for row in &table {
        let name = unquote(&row[0]);
        assert_eq!(row[2], yes(config.mqtt.refuses(name).is_none()), "{name}");
        let group = config.mqtt.refuses_for_group(name).is_none();
        assert_eq!(row[3], yes(group), "{name} as a group command");
    }
    // The supervisor verbs are named as never taken over MQTT.
    for verb in [
        "process_status",
        "start_process",
        "stop_process",
        "tail_process",
        "reload_config",
    ] {
        let cmd = command::parse(&format!(
            r#"{{"command": "{verb}", "params": {{"name": "capture"}}}}"#
        ));
        assert!(cmd.action.is_ok_and(|a| a.is_local_only()), "{verb}");
        assert!(DOC.contains(&format!("`{verb}`")), "{verb} not named");
    }
}

#[test]
fn the_error_kinds_are_all_there() {
    let documented: BTreeSet<String> = rows(chapter("Commands"))
        .into_iter()
        .filter(|r| r.len() == 2)
        .map(|r| unquote(&r[0]).to_string())
        .collect();
    let kinds: BTreeSet<String> = all_kinds().into_iter().map(kind_name).collect();
    assert_eq!(documented, kinds);
}

#[test]
fn the_topics_and_their_default_qos_are_the_ones_orion_uses() {
    let text = "instance_id = \"node_001\"\n[camera]\nsource = \"test://ball\"\n\
                [mqtt]\ngroups = [\"floor-2\"]\n";
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let t = Topics::new(&config);
    let zone = t.zone_occupancy("{zone}");
    let ours: BTreeSet<&str> = [
        &t.control,
        &t.groups[0].0,
        &t.health,
        &t.status,
        &t.availability,
        &t.detections,
        &t.occupancy,
        &zone,
        &t.snapshot,
        &t.events,
    ]
    .into_iter()
    .map(String::as_str)
    .collect();
    let table = rows(chapter("Topics"));
    let documented: BTreeSet<String> = table
        .iter()
        .map(|r| {
            unquote(&r[0])
                .replace("{id}", "node_001")
                .replace("{group}", "floor-2")
        })
        .collect();
    assert_eq!(
        documented,
        ours.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
    let qos = serde_json::to_value(&config.mqtt.qos).unwrap_or(Value::Null);
    for row in &table {
        // "`mqtt.qos.acks` (default 0)"
        let cell = &row[2];
        let key = cell
            .split('`')
            .nth(1)
            .and_then(|k| k.strip_prefix("mqtt.qos."))
            .unwrap_or_else(|| panic!("QoS cell {cell:?}"));
        let default = format!("(default {})", qos[key]);
        assert!(cell.ends_with(&default), "{cell}: expected {default}");
        assert!(["yes", "no"].contains(&row[3].as_str()), "{row:?}");
    }
    // Each example payload of a topic is JSON.
    for block in blocks(chapter("Topics"), "json topic") {
        let v: Result<Value, _> = serde_json::from_str(&block);
        assert!(v.is_ok_and(|v| v.is_object()), "{block}");
    }
}

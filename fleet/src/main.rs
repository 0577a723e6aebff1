//! `orion-fleet`: the rooms a broker carries, and one command to a room or a group with
//! every ack collected. Exit status 1 when an expected room did not answer in time or
//! answered with an error.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use orion_fleet::cli::{BrokerArgs, Cli, Command};
use orion_fleet::{Broker, Fleet, Outcome, Room, Target};
use serde_json::{Value, json};

fn seconds(s: f64, what: &str) -> Result<Duration> {
    anyhow::ensure!(
        s.is_finite() && (0.0..=3600.0).contains(&s),
        "{what} must be 0..=3600 seconds, got {s}"
    );
    Ok(Duration::from_secs_f64(s))
}

fn broker(a: BrokerArgs) -> Result<Broker> {
    let password = match &a.password_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("read the password file {}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => None,
    };
    Ok(Broker {
        host: a.host,
        port: a.port,
        username: a.user,
        password,
        prefix: a.prefix,
    })
}

fn print_rooms(rooms: &[Room], json: bool) {
    if json {
        for r in rooms {
            println!("{}", r.to_json());
        }
        return;
    }
    println!(
        "{:<24} {:<8} {:<5} {:>6} {:>6} {:<9} {:<16} LAST SEEN",
        "ROOM", "AVAIL", "MODEL", "RATE", "FPS", "OCCUPIED", "GROUPS"
    );
    let dash = || "-".to_string();
    for r in rooms {
        println!(
            "{:<24} {:<8} {:<5} {:>6} {:>6} {:<9} {:<16} {}",
            r.id,
            r.availability.clone().unwrap_or_else(dash),
            r.model.clone().unwrap_or_else(dash),
            r.rate_hz.map(|v| format!("{v}")).unwrap_or_else(dash),
            r.fps.map(|v| format!("{v:.1}")).unwrap_or_else(dash),
            match r.occupied {
                Some(true) => format!("yes ({})", r.count.unwrap_or(0)),
                Some(false) => "no".into(),
                None => "unknown".into(),
            },
            if r.groups.is_empty() {
                dash()
            } else {
                r.groups.join(",")
            },
            r.last_seen.clone().unwrap_or_else(dash),
        );
    }
}

fn print_outcome(o: &Outcome, json: bool) {
    for (id, (ack, after)) in &o.acks {
        let ms = after.as_secs_f64() * 1000.0;
        if json {
            println!("{}", json!({"instance_id": id, "ms": ms, "ack": ack}));
        } else {
            let error = ack["error"].as_str().unwrap_or("");
            println!(
                "{id:<24} {:<8} {ms:>8.1} ms  {error}",
                ack["status"].as_str().unwrap_or("?")
            );
        }
    }
    for id in &o.missing {
        if json {
            println!("{}", json!({"instance_id": id, "missing": true}));
        } else {
            println!("{id:<24} {:<8} (no answer)", "missing");
        }
    }
    if !json {
        println!(
            "{} answered, {} missing (request {})",
            o.acks.len(),
            o.missing.len(),
            o.request_id
        );
    }
}

fn run(cli: Cli) -> Result<bool> {
    let mut fleet = Fleet::connect(broker(cli.broker)?)?;
    match cli.command {
        Command::Rooms { wait_s, json } => {
            let rooms = fleet.rooms(seconds(wait_s, "--wait-s")?)?;
            print_rooms(&rooms.into_values().collect::<Vec<_>>(), json);
            Ok(true)
        }
        Command::Send {
            command,
            params,
            room,
            group,
            expect,
            timeout_s,
            wait_s,
            json,
        } => {
            let params: Value = serde_json::from_str(&params).context("--params is not JSON")?;
            anyhow::ensure!(params.is_object(), "--params must be a JSON object");
            let mut expected: BTreeSet<String> = expect.into_iter().collect();
            let target = match (room, group) {
                (Some(room), _) => {
                    expected.insert(room.clone());
                    Target::Room(room)
                }
                (None, Some(group)) => {
                    let rooms = fleet.rooms(seconds(wait_s, "--wait-s")?)?;
                    expected.extend(
                        rooms
                            .into_values()
                            .filter(|r| r.groups.contains(&group))
                            .map(|r| r.id),
                    );
                    Target::Group(group)
                }
                (None, None) => anyhow::bail!("name a --room or a --group"),
            };
            let timeout = seconds(timeout_s, "--timeout-s")?;
            let outcome = fleet.send(&target, &command, params, &expected, timeout)?;
            print_outcome(&outcome, json);
            Ok(outcome.all_ok())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("orion-fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}

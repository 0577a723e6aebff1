//! `orion-fleet`'s command line (in the library so that its man page and completions are
//! generated from the same definition).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Many Orion rooms through their MQTT broker.
#[derive(Parser, Debug)]
#[command(name = "orion-fleet", version)]
pub struct Cli {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// The broker (any node of a cluster)
    #[arg(
        long,
        env = "ORION_FLEET_HOST",
        default_value = "localhost",
        global = true
    )]
    pub host: String,
    #[arg(long, env = "ORION_FLEET_PORT", default_value_t = 1883, global = true)]
    pub port: u16,
    /// A broker user allowed to read `{prefix}/#` and write `{prefix}/control/#`
    #[arg(long, env = "ORION_FLEET_USER", global = true)]
    pub user: Option<String>,
    /// A file holding that user's password (never the password on the command line)
    #[arg(long, env = "ORION_FLEET_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Orion's topic prefix (`[mqtt] prefix`)
    #[arg(long, default_value = "care", global = true)]
    pub prefix: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The rooms seen on the broker (their retained availability, status and occupancy)
    Rooms {
        /// How long to collect retained messages
        #[arg(long, default_value_t = 2.0)]
        wait_s: f64,
        /// One JSON object per room instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Sends one command to a room or a group and lists every ack and every room that did
    /// not answer in time
    Send {
        /// The command (e.g. get_status, pause_inference, set_inference_rate)
        command: String,
        /// Its params, a JSON object (e.g. '{"rate_hz": 2}')
        #[arg(long, default_value = "{}")]
        params: String,
        /// One room, by instance id
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        room: Option<String>,
        /// A group (`[mqtt] groups`): its members are the rooms whose retained status
        /// names it, plus every --expect
        #[arg(long)]
        group: Option<String>,
        /// A room that must answer (repeatable)
        #[arg(long)]
        expect: Vec<String>,
        /// How long the rooms may take to answer
        #[arg(long, default_value_t = 10.0)]
        timeout_s: f64,
        /// How long to collect retained statuses to find a group's members
        #[arg(long, default_value_t = 2.0)]
        wait_s: f64,
        /// One JSON object per ack instead of a table
        #[arg(long)]
        json: bool,
    },
}

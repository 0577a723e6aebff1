//! `orion-docgen`: the package's generated files (`packaging/build-deb.sh` runs it).
//!
//! - `orion-docgen man OUT`: `OUT/man/{name}.{section}` for every program the package
//!   installs and `OUT/completions/{bash,zsh,fish}/…` for those people type, from the
//!   programs' own clap definitions, so `--help`, the page and the completions agree.
//! - `orion-docgen copyright REPORT OUT`: the Debian copyright file: Orion's licence, then
//!   every third-party crate linked in with its licence text and notice, from cargo-about's
//!   JSON report of Cargo.lock.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod copyright;
mod man;

#[derive(Parser, Debug)]
#[command(name = "orion-docgen", about = "Write the package's generated files")]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Man pages and shell completions into OUT
    Man { out: PathBuf },
    /// The copyright file OUT from cargo-about's JSON REPORT
    Copyright { report: PathBuf, out: PathBuf },
}

fn main() -> Result<()> {
    match Cli::parse().what {
        What::Man { out } => man::write_all(&out),
        What::Copyright { report, out } => copyright::write(&report, &out),
    }
}

//! `oriond`: Orion's supervisor (the library, `orion_supervisor`, is all of it).

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    orion_process::init_logging();
    orion_supervisor::oriond(orion_supervisor::Args::parse())
}

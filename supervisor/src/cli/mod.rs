//! The command lines of oriond, orionctl and orion-setup, in the library so that one
//! definition makes both the parsers and the man pages and shell completions
//! (`packaging/manpages`).

pub mod orionctl;
pub mod oriond;
pub mod setup;

/// Every program's command definition, by program name.
pub fn commands() -> Vec<clap::Command> {
    use clap::CommandFactory;
    vec![
        oriond::Args::command(),
        orionctl::Cli::command(),
        setup::Args::command(),
    ]
}

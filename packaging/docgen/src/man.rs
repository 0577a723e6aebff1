//! Man pages (clap_mangen) and completions (clap_complete) from the clap definitions.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// The programs oriond starts itself: people never run them, but each installed program
/// gets its page, saying so.
const HELPERS: [(&str, &str); 4] = [
    (
        "orion-capture",
        "camera process: decodes the stream into oriond's frame ring",
    ),
    (
        "orion-detector",
        "detector process: drives the Python ONNX Runtime worker",
    ),
    (
        "orion-control",
        "MQTT process: commands in; detections, status and acks out",
    ),
    (
        "orion-snapshot",
        "snapshot helper: draws the newest frame with its detections",
    ),
];

pub fn write_all(out: &Path) -> Result<()> {
    let mut people = orion_supervisor::cli::commands();
    people.push(<orion_fleet::cli::Cli as clap::CommandFactory>::command());
    for cmd in &people {
        let section = if cmd.get_name() == "orion-fleet" {
            "1"
        } else {
            "8"
        };
        page(out, cmd.clone(), section)?;
        completions(out, cmd.clone())?;
    }
    for (name, what) in HELPERS {
        let cmd = Command::new(name)
            .version(env!("CARGO_PKG_VERSION"))
            .about(format!("Orion's {what}"))
            .long_about(format!(
                "Orion's {what}. oriond(8) starts it with the arguments and the socket it \
                 needs and supervises it; it is not meant to be run by hand. See oriond(8) \
                 and /usr/share/doc/orion/operations.md."
            ));
        page(out, cmd, "8")?;
    }
    Ok(())
}

fn page(out: &Path, cmd: Command, section: &str) -> Result<()> {
    let dir = out.join("man");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.{section}", cmd.get_name()));
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .manual("Orion")
        .source(format!("Orion {}", env!("CARGO_PKG_VERSION")))
        .render(&mut text)?;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

fn completions(out: &Path, mut cmd: Command) -> Result<()> {
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join("completions").join(shell.to_string());
        std::fs::create_dir_all(&dir)?;
        let file = match shell {
            Shell::Zsh => format!("_{name}"),
            Shell::Fish => format!("{name}.fish"),
            _ => name.clone(),
        };
        let path = dir.join(&file);
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        clap_complete::generate(shell, &mut cmd, &name, &mut f);
    }
    Ok(())
}

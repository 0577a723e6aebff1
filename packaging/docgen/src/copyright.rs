//! `/usr/share/doc/orion/copyright` from cargo-about's JSON report: Orion's own licence,
//! then each distinct licence text of the third-party crates linked into the programs
//! (the text as the crate ships it, so its copyright lines are kept) with the crates it
//! covers. The Apache License 2.0 is referred to in /usr/share/common-licenses, as Debian
//! asks, rather than repeated; an exception attached to it (LLVM's) is kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::Deserialize;

#[derive(Deserialize)]
struct Report {
    licenses: Vec<License>,
}

#[derive(Deserialize)]
struct License {
    id: String,
    name: String,
    text: String,
    used_by: Vec<UsedBy>,
}

#[derive(Deserialize)]
struct UsedBy {
    #[serde(rename = "crate")]
    krate: Crate,
}

#[derive(Deserialize)]
struct Crate {
    name: String,
    version: String,
}

const HEADER: &str = "\
Orion: a care-room person sensor (oriond, orionctl, orion-setup, orion-fleet and the
processes oriond starts).

Copyright 2026 Orion team <orion@example.invalid>
License: Apache-2.0
 On Debian systems the complete text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.

The programs are linked with the Rust crates below (from Cargo.lock, listed by
cargo-about). Each licence text is given as the crate ships it, with its copyright
notice, followed by the crates it covers; a crate offered under a choice of licences is
listed under the one Orion uses.
";

pub fn write(report: &Path, out: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(report).with_context(|| format!("read {}", report.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not cargo-about's JSON report", report.display()))?;
    let body = render(&report)?;
    std::fs::write(out, body).with_context(|| format!("write {}", out.display()))
}

/// One licence text as printed (name, SPDX id, text), and the crates it covers by version.
type Block<'a> = ((&'a str, &'a str, String), BTreeMap<&'a str, &'a str>);

fn render(report: &Report) -> Result<String> {
    // Crates whose licence text reads the same (Apache-2.0 by reference, a notice shared
    // word for word) are listed under one copy of it.
    let mut blocks: Vec<Block> = Vec::new();
    for license in &report.licenses {
        // Orion's own crates are the header's.
        let users = license
            .used_by
            .iter()
            .filter(|u| !u.krate.name.starts_with("orion-"))
            .map(|u| (u.krate.name.as_str(), u.krate.version.as_str()));
        let key = (license.name.as_str(), license.id.as_str(), text_of(license));
        match blocks.iter_mut().find(|(k, _)| *k == key) {
            Some((_, all)) => all.extend(users),
            None => blocks.push((key, users.collect())),
        }
    }
    let mut out = String::from(HEADER);
    let mut crates = 0;
    for ((name, id, text), users) in blocks.iter().filter(|(_, u)| !u.is_empty()) {
        crates += users.len();
        let list: Vec<String> = users.iter().map(|(n, v)| format!("{n} {v}")).collect();
        let _ = write!(
            out,
            "\n{}\n{name} ({id})\nUsed by: {}\n\n{}\n",
            "-".repeat(78),
            list.join(", "),
            text.trim_end()
        );
    }
    ensure!(crates > 0, "the report names no third-party crate");
    Ok(out)
}

/// The licence text to print: Apache-2.0 by reference; anything after it (an exception)
/// as it is.
fn text_of(license: &License) -> String {
    if !license.id.starts_with("Apache-2.0") {
        return license.text.clone();
    }
    let reference = "On Debian systems the complete text of the Apache License, Version 2.0, \
                     is in /usr/share/common-licenses/Apache-2.0.";
    match license.text.find("---- LLVM Exceptions") {
        Some(at) => format!("{reference}\n\n{}", &license.text[at..]),
        None => reference.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn license(id: &str, text: &str, users: &[&str]) -> License {
        License {
            id: id.into(),
            name: id.into(),
            text: text.into(),
            used_by: users
                .iter()
                .map(|n| UsedBy {
                    krate: Crate {
                        name: (*n).into(),
                        version: "1.0.0".into(),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn notices_are_kept_apache_is_referred_to_and_orion_is_the_header() {
        let report = Report {
            licenses: vec![
                license(
                    "MIT",
                    "Copyright (c) 2020 Someone\n\nPermission is hereby granted",
                    &["memchr", "orion-ring"],
                ),
                license(
                    "Apache-2.0",
                    "Apache License\nVersion 2.0 ... full text",
                    &["anyhow"],
                ),
                license("Apache-2.0", "own text", &["orion-control"]),
                license("Apache-2.0", "another copy of the text", &["cfg-if"]),
                license(
                    "Apache-2.0 WITH LLVM-exception",
                    "Apache License ...\n---- LLVM Exceptions to the Apache 2.0 License ----\nAs an exception",
                    &["rustix"],
                ),
            ],
        };
        let text = render(&report).unwrap();
        assert!(text.starts_with("Orion: a care-room person sensor"));
        assert!(text.contains("Copyright (c) 2020 Someone"));
        assert!(text.contains("Used by: memchr 1.0.0\n"), "{text}");
        assert!(!text.contains("orion-ring") && !text.contains("own text"));
        assert!(!text.contains("full text"), "Apache-2.0 by reference only");
        assert!(
            text.contains("Used by: anyhow 1.0.0, cfg-if 1.0.0\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("common-licenses/Apache-2.0").count(),
            3,
            "{text}"
        );
        assert!(text.contains("---- LLVM Exceptions"));
        let only_orion = Report {
            licenses: vec![license("Apache-2.0", "x", &["orion-ring"])],
        };
        assert!(render(&only_orion).is_err());
    }
}

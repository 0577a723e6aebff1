//! Finds the workspace's binaries from a test of another package.
//!
//! Cargo hands an integration test only its own package's binaries
//! (`CARGO_BIN_EXE_<name>`); the others sit next to them in the target directory once the
//! workspace's binaries are built (`cargo build --workspace --bins`, which
//! `scripts/test.sh` runs before the tests: a test build alone leaves out the binaries of
//! packages without tests of their own, such as `orion-snapshot`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Path of workspace binary `name`, e.g. `rtsp-test-server`.
pub fn locate(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut dir = exe
        .parent()
        .context("test binary has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built; build it with `{BUILD}` (scripts/test.sh does, before the tests)",
            path.display()
        );
    }
    Ok(path)
}

/// What builds every binary a test may start.
pub const BUILD: &str = "cargo build --workspace --bins";

/// Every program oriond starts from its `bin_dir`, besides the children in its config.
pub const ORIOND_PROGRAMS: [&str; 4] = [
    "orion-capture",
    "orion-detector",
    "orion-control",
    "orion-snapshot",
];

/// The directory of oriond's programs, once every one of [`ORIOND_PROGRAMS`] is there: a
/// missing helper fails here, naming the command that builds it, not later as an odd
/// error from inside oriond.
pub fn oriond_bin_dir() -> Result<PathBuf> {
    let mut dir = None;
    for name in ORIOND_PROGRAMS {
        dir = locate(name)?.parent().map(PathBuf::from);
    }
    dir.context("binary dir")
}

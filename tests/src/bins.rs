//! Finds the workspace's binaries from a test of another package.
//!
//! Cargo hands an integration test only its own package's binaries
//! (`CARGO_BIN_EXE_<name>`); the others sit next to them in the target directory once the
//! workspace is built (`cargo test --workspace`, which `scripts/test.sh` runs).

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
            "{} is not built; run the tests with `cargo test --workspace` (scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

#!/usr/bin/env bash
# Builds target/debian/orion_<version>_<arch>.deb: the release binaries of the whole
# workspace (cargo deb builds only one package's), then cargo deb without rebuilding.
# Needs cargo-deb and cargo-about (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p orion-supervisor -p orion-capture -p orion-detector-bridge -p orion-control -p orion-snapshot -p orion-fleet -p orion-docgen
# Generated files, which cargo deb takes from target/release/gen: man pages and completions
# from the programs' clap definitions (pages gzipped here: cargo deb leaves files under
# target/ as they are), and the copyright file with every linked crate's licence from
# cargo-about's report (about.toml).
target="${CARGO_TARGET_DIR:-target}"
gen="$target/release/gen"
rm -rf "$gen"
"$target/release/orion-docgen" man "$gen"
gzip -9n "$gen/man/"*
# Offline: the licence texts come from the crates themselves (fetched from the registry
# first), never from their git hosts, which this project's machines cannot reach.
cargo fetch --locked
cargo about generate --offline --locked --workspace --format json -o "$gen/about.json"
"$target/release/orion-docgen" copyright "$gen/about.json" "$gen/copyright"
cargo deb --no-build --locked --strip -p orion-supervisor "$@"

#!/usr/bin/env bash
# Builds target/debian/orion_<version>_<arch>.deb: the release binaries of the whole
# workspace (cargo deb builds only one package's), then cargo deb without rebuilding.
# Needs cargo-deb (scripts/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p orion-supervisor -p orion-capture -p orion-detector-bridge -p orion-control -p orion-snapshot -p orion-fleet
cargo deb --no-build --locked --strip -p orion-supervisor "$@"

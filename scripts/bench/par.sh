#!/bin/bash
# Cost as the topology grows, acking on: 1, 2, 4, 8 split and count tasks, and a 100-task
# topology (4 spouts, 48 splits, 48 counts); 3 rounds of 15 s, each beside timely.
SECONDS_MEASURED=${SECONDS_MEASURED:-15}
source "$(dirname "$0")/common.sh"
for r in 1 2 3; do
    row $r timely-max "$(timely)"
    for n in 1 2 4 8; do
        row $r par-$n "$(tempest --acking on --splits $n --counts $n)"
    done
    row $r tasks-100 "$(tempest --acking on --spouts 4 --splits 48 --counts 48)"
done

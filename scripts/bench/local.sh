#!/bin/bash
# Local-mode benchmark beside the timely yardstick: 3 rounds, each timely (full speed), Tempest
# acking off, acking on, --state on, then timely and Tempest at 100,000 sentences/s. Summarize
# with: python3 scripts/bench/summarize.py LOG. Run from the repository root after
#   cargo build --release -p tempest-examples --example bench_word_count
# and building ../shared/bench/timely (TIMELY= its binary).
source "$(dirname "$0")/common.sh"
for r in 1 2 3; do
    row $r timely-max "$(timely)"
    row $r local-off "$(tempest --acking off)"
    row $r local-on "$(tempest --acking on)"
    row $r local-state "$(tempest --state on)"
    row $r timely-100k "$(timely --rate 100000)"
    row $r local-on-100k "$(tempest --acking on --rate 100000)"
done

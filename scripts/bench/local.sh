#!/bin/bash
# Local-mode benchmark beside the timely yardstick: 3 rounds, each timely (full speed), Tempest
# acking off, acking on, --state on, then timely and Tempest at 100,000 sentences/s. Summarize
# with: python3 scripts/bench/summarize.py LOG. Run from the repository root after
#   cargo build --release -p tempest-examples --example bench_word_count
# and building ../shared/bench/timely (TIMELY= its binary).
T=${TIMELY:-/tmp/timely/target/release/timely-wordcount-bench}
B=${BENCH:-target/release/examples/bench_word_count}
S=20
tl() { $T --sentences ${SENTENCES:-../shared/bench/sentences.txt} --warmup 5 --measure $S --workers 2 "$@" 2>&1 | tail -n 1 | grep -o 'words_per_s=[0-9]*\|p50_us=[0-9.]*\|p99_us=[0-9.]*\|p999_us=[0-9.]*\|cpu_cores=[0-9.]*\|peak_rss_mb=[0-9.]*' | tr '\n' ' '; }
for r in 1 2 3; do
  echo "round $r $(date +%T) timely-max $(tl)"
  echo "round $r $(date +%T) local-off $($B --warmup 5 --seconds $S --acking off 2>&1 | tail -n 1)"
  echo "round $r $(date +%T) local-on $($B --warmup 5 --seconds $S --acking on 2>&1 | tail -n 1)"
  echo "round $r $(date +%T) local-state $($B --warmup 5 --seconds $S --state on 2>&1 | tail -n 1)"
  echo "round $r $(date +%T) timely-100k $(tl --rate 100000)"
  echo "round $r $(date +%T) local-on-100k $($B --warmup 5 --seconds $S --acking on --rate 100000 2>&1 | tail -n 1)"
done

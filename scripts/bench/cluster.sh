#!/bin/bash
# The same on a running local cluster (deploy/local-cluster.sh start), 2 workers: 3 rounds of
# timely, acking off, acking on, timely and Tempest at 100,000 sentences/s.
T=${TIMELY:-/tmp/timely/target/release/timely-wordcount-bench}
B=${BENCH:-target/release/examples/bench_word_count}
S=20
export TEMPEST_SECRET=${TEMPEST_SECRET:-$(cat "${TEMPEST_HOME:-tempest-local}/secret")}
tl() { $T --sentences ${SENTENCES:-../shared/bench/sentences.txt} --warmup 5 --measure $S --workers 2 "$@" 2>&1 | tail -n 1 | grep -o 'words_per_s=[0-9]*\|p50_us=[0-9.]*\|p99_us=[0-9.]*\|p999_us=[0-9.]*\|cpu_cores=[0-9.]*\|peak_rss_mb=[0-9.]*' | tr '\n' ' '; }
c() { $B --cluster http://127.0.0.1:6627 --workers 2 --warmup 5 --seconds $S "$@" 2>&1 | tail -n 1; }
for r in 1 2 3; do
  echo "round $r $(date +%T) timely-max $(tl)"
  echo "round $r $(date +%T) cluster-off $(c --acking off)"
  echo "round $r $(date +%T) cluster-on $(c --acking on)"
  echo "round $r $(date +%T) timely-100k $(tl --rate 100000)"
  echo "round $r $(date +%T) cluster-on-100k $(c --acking on --rate 100000)"
done

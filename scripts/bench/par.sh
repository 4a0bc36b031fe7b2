#!/bin/bash
# Cost as the topology grows, acking on: 1, 2, 4, 8 split and count tasks, and a 100-task
# topology (4 spouts, 48 splits, 48 counts); 3 rounds, each beside timely.
T=${TIMELY:-/tmp/timely/target/release/timely-wordcount-bench}
B=${BENCH:-target/release/examples/bench_word_count}
S=15
for r in 1 2 3; do
  echo "round $r $(date +%T) timely-max $($T --sentences ${SENTENCES:-../shared/bench/sentences.txt} --warmup 5 --measure $S --workers 2 2>&1 | tail -n 1 | grep -o 'words_per_s=[0-9]*' )"
  for n in 1 2 4 8; do
    echo "round $r $(date +%T) par-$n $($B --warmup 5 --seconds $S --acking on --splits $n --counts $n 2>&1 | tail -n 1)"
  done
  echo "round $r $(date +%T) tasks-100 $($B --warmup 5 --seconds $S --acking on --spouts 4 --splits 48 --counts 48 2>&1 | tail -n 1)"
done

#!/bin/bash
# What the benchmark scripts share: the binaries, the measured window, and one run of each side.
# Sourced by local.sh, cluster.sh and par.sh; run them from the repository root.
T=${TIMELY:-/tmp/timely/target/release/timely-wordcount-bench}
B=${BENCH:-target/release/examples/bench_word_count}
S=${SECONDS_MEASURED:-20}

# timely's word count (2 workers) with extra flags; prints its figures as key=value pairs.
timely() {
    "$T" --sentences "${SENTENCES:-../shared/bench/sentences.txt}" --warmup 5 --measure "$S" \
        --workers 2 "$@" 2>&1 | tail -n 1 |
        grep -o 'words_per_s=[0-9]*\|p50_us=[0-9.]*\|p99_us=[0-9.]*\|p999_us=[0-9.]*\|cpu_cores=[0-9.]*\|peak_rss_mb=[0-9.]*' |
        tr '\n' ' '
}

# Tempest's bench_word_count with extra flags; prints its result line.
tempest() {
    "$B" --warmup 5 --seconds "$S" "$@" 2>&1 | tail -n 1
}

# One labelled line of a round: `row ROUND LABEL FIGURES`.
row() {
    echo "round $1 $(date +%T) $2 $3"
}

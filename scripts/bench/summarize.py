"""Medians and ratios to the same round's timely run, from a log of scripts/bench/*.sh.

Usage: python3 scripts/bench/summarize.py LOG
"""
import collections
import re
import statistics
import sys

rows = collections.defaultdict(dict)  # label -> round -> {key: value}
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+) \S+ (\S+) (.*)", line)
    if m:
        r, label, rest = m.groups()
        rows[label][int(r)] = dict(x.split("=", 1) for x in rest.split() if "=" in x)


def median(by_round, key):
    xs = [float(v[key]) for v in by_round.values() if key in v]
    return statistics.median(xs) if xs else None


for label, by_round in rows.items():
    timely = rows["timely-100k" if "100k" in label else "timely-max"]
    ratios = [float(v["words_per_s"]) / float(timely[r]["words_per_s"])
              for r, v in by_round.items() if r in timely]
    figures = " ".join(f"{k} {median(by_round, k)}" for k in
                       ("p50_us", "p99_us", "p999_us", "cpu_cores", "peak_rss_mb"))
    print(f"{label:16} words/s {median(by_round, 'words_per_s') / 1e6:.2f}M "
          f"ratio {statistics.median(ratios):.2f} ({' '.join(f'{x:.2f}' for x in ratios)}) {figures}")

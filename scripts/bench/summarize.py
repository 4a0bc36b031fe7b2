"""Medians and ratios to the same round's timely run, from a log of scripts/bench/*.sh."""
import sys,re,statistics,collections
rows=collections.defaultdict(dict)
for line in open(sys.argv[1]):
    m=re.match(r'round (\d+) \S+ (\S+) (.*)',line)
    if not m: continue
    r,label,rest=m.groups()
    kv=dict(x.split('=') for x in rest.split() if '=' in x)
    rows[label][int(r)]=kv
base=sys.argv[2] if len(sys.argv)>2 else 'timely-max'
for label,byr in rows.items():
    ref = 'timely-100k' if '100k' in label else base
    ws=[float(v['words_per_s']) for v in byr.values()]
    ratios=[float(byr[r]['words_per_s'])/float(rows[ref][r]['words_per_s']) for r in byr if r in rows[ref]]
    def med(k):
        xs=[float(v[k]) for v in byr.values() if k in v]
        return statistics.median(xs) if xs else None
    print(f"{label:16} words/s med {statistics.median(ws)/1e6:.2f}M ratio med {statistics.median(ratios):.2f} ({' '.join(f'{x:.2f}' for x in ratios)}) p50 {med('p50_us')} p99 {med('p99_us')} p999 {med('p999_us')} cpu {med('cpu_cores')} rss {med('peak_rss_mb')}")

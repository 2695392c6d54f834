#!/usr/bin/env python3
"""Per level window of a kaito engine trace: are the slow gaps a client sees made by the engine's steps?

    python3 step-gaps.py DIR LEVEL_SUFFIX      (reads DIR/kaito.log[.gz], DIR/marks, DIR/NAME.json)

For each window whose name ends in LEVEL_SUFFIX: the waves coalesced (arrivals, last wave, ms); the steps, and
those carrying prompt tokens beside decodes; the gap a decoding sequence sees between two steps' ends (each
step counted once per sequence it decodes), its median and p99 beside the client's ITL p99 from NAME.json; and
the decode steps at or above their p95, as (place in the wave, ms).
"""
import gzip, json, os, re, statistics, sys
from datetime import datetime

out, suffix = sys.argv[1], sys.argv[2]
path = f"{out}/kaito.log"
lines = (open(path) if os.path.exists(path) else gzip.open(path + ".gz", "rt")).read().splitlines()
marks = [line.split() for line in open(f"{out}/marks")]


def stamp(line):
    return datetime.fromisoformat(line.split()[0].rstrip("Z")).timestamp() * 1e3


for (name, a), (_, b) in zip(marks, marks[1:]):
    if not name.endswith(suffix):
        continue
    window = lines[int(a):int(b)]
    waves = [dict(re.findall(r"(arrived|last_wave|ms)=([0-9.]+)", l)) for l in window if "coalesced" in l]
    steps, place = [], 0
    for l in window:
        if " decoded" in l:
            f = dict(re.findall(r"\b(tokens|decoding|ms)=([0-9.]+)", l))
            decoding = int(f["decoding"])
            place = 0 if decoding == 0 else place + 1
            steps.append((stamp(l), float(f["ms"]), decoding, int(f["tokens"]) - decoding, place))
    gaps = sorted(g for s0, s1 in zip(steps, steps[1:]) if s1[2] > 0 for g in [s1[0] - s0[0]] * s1[2])
    decodes = [s for s in steps if s[2] > 0]
    slow = sorted(s[1] for s in decodes)[int(len(decodes) * 0.95)]
    client = json.load(open(f"{out}/{name}.json"))[0]["itl_p99_ms"]
    print(f"{name}: waves (arrived, last wave, ms) {[(w['arrived'], w['last_wave'], round(float(w['ms']), 1)) for w in waves]}")
    print(f"  steps {len(steps)}, with prompt tokens beside decodes {sum(1 for s in steps if s[2] and s[3])}")
    print(f"  gap between steps: median {statistics.median(gaps):.0f} ms, p99 {gaps[int(len(gaps) * 0.99)]:.0f} ms;"
          f" client ITL p99 {client:.0f} ms")
    print(f"  decode steps >= p95 ({slow:.0f} ms), (place, ms): {[(s[4], round(s[1])) for s in decodes if s[1] >= slow]}")

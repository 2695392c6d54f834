#!/usr/bin/env python3
"""Median ratios kaito ÷ llama-server over the runs of one workload of scripts/bench-vs-llama-server.sh.

    scripts/bench-ratios.py DIR WORKLOAD RUNS [DIR RUNS ...]

Reads DIR/WORKLOAD-1.json .. DIR/WORKLOAD-RUNS.json (`kaito bench --json`) and prints, per concurrency,
the median ratio of output tok/s, TTFT p99 and ITL p99 (the p99 of the gaps between two streamed
chunks, over all requests of the level), then each run's ITL p99 in ms for both servers, marking with *
the one measured first at that level and adding, where the JSON has it, the machine's steal time (s) during
each server's level. More DIR RUNS pairs pool the runs of several sweeps into one median. Where steal was
recorded it then prints, as a diagnostic beside (never instead of) the medians, how the ITL p99 ratio ranks
against the difference in steal (Spearman) and the median ratio of the runs in which the two servers' levels
lost about as much to the hypervisor (within MATCHED_STEAL_MS, default 500, of each other).
"""
import json
import os
import statistics
import sys

if len(sys.argv) < 4 or len(sys.argv) % 2 != 0:
    sys.exit("usage: scripts/bench-ratios.py DIR WORKLOAD RUNS [DIR RUNS ...]")
workload = sys.argv[2]
sweeps = [(sys.argv[1], int(sys.argv[3]))] + [
    (sys.argv[i], int(sys.argv[i + 1])) for i in range(4, len(sys.argv) - 1, 2)
]
runs = sum(n for _, n in sweeps)
rows = {}
for out, run in ((out, run) for out, n in sweeps for run in range(1, n + 1)):
    with open(f"{out}/{workload}-{run}.json") as f:
        levels = json.load(f)
    by = {(level["target"], level["concurrency"]): level for level in levels}
    for (target, conc), ours in by.items():
        if target != "kaito":
            continue
        peer = by[("llama-server", conc)]
        r = rows.setdefault(conc, {"tok": [], "ttft": [], "itl": [], "itl_ms": []})
        r["tok"].append(ours["output_tok_s"] / peer["output_tok_s"])
        r["ttft"].append(ours["ttft_p99_ms"] / peer["ttft_p99_ms"])
        r["itl"].append(ours["itl_p99_ms"] / peer["itl_p99_ms"])
        r["itl_ms"].append((ours, peer))


def figure(level):
    """A level's ITL p99 in ms, * when measured first, and the steal time during it when recorded."""
    text = f"{level['itl_p99_ms']:.0f}"
    if level.get("position") == 0:
        text += "*"
    if level.get("steal_ms") is not None:
        text += f" (st {level['steal_ms'] / 1000:.1f})"
    return text


print(f"\nmedian of {runs} runs, kaito ÷ llama-server ({workload})")
print("| conc | tok/s ratio | TTFT p99 ratio | ITL p99 ratio | tok/s ratios, each run | ITL p99 ms kaito / llama-server, each run |")
print("|---|---|---|---|---|---|")
for conc in sorted(rows):
    r = rows[conc]
    each = " ".join(f"{x:.2f}" for x in r["tok"])
    itl = ", ".join(f"{figure(k)} / {figure(p)}" for k, p in r["itl_ms"])
    print(
        f"| {conc} | {statistics.median(r['tok']):.2f} | {statistics.median(r['ttft']):.2f} "
        f"| {statistics.median(r['itl']):.2f} | {each} | {itl} |"
    )


# The diagnostic: does the tail follow the hypervisor? Only where every level recorded its steal time.
pairs = [(conc, k, p) for conc, r in rows.items() for k, p in r["itl_ms"]]
if pairs and all(k.get("steal_ms") is not None and p.get("steal_ms") is not None for _, k, p in pairs):

    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, i in enumerate(order):
            out[i] = float(rank)
        return out

    ratio = [k["itl_p99_ms"] / p["itl_p99_ms"] for _, k, p in pairs]
    steal = [k["steal_ms"] - p["steal_ms"] for _, k, p in pairs]
    rho = statistics.correlation(ranks(ratio), ranks(steal)) if len(pairs) > 2 else float("nan")
    matched = float(os.environ.get("MATCHED_STEAL_MS", "500"))
    print(f"\nITL p99 ratio against steal (kaito's level − llama-server's), {len(pairs)} pairs: Spearman {rho:.2f}")
    print(f"median ITL p99 ratio of the runs whose two levels' steal differed by at most {matched:.0f} ms:")
    print("| conc | ITL p99 ratio | runs |")
    print("|---|---|---|")
    for conc in sorted(rows):
        calm = [k["itl_p99_ms"] / p["itl_p99_ms"] for c, k, p in pairs
                if c == conc and abs(k["steal_ms"] - p["steal_ms"]) <= matched]
        print(f"| {conc} | {statistics.median(calm):.2f} | {len(calm)} |" if calm else f"| {conc} | – | 0 |")

#!/usr/bin/env python3
"""The report of scripts/bench-forward-pass.sh, from what it left in DIR (default target/bench-forward-pass).

    scripts/forward-pass-report.py [DIR]

Reads DIR/kaito.log (kaito's engine trace: `decoded sequences=… tokens=… decoding=… ms=…` lines),
DIR/llama-server.log (its `print_timing` eval lines), DIR/marks (both logs' line counts after each run) and
DIR/run-N.json (`kaito bench --json`), and prints, run by run: the median forward pass of each server (kaito's
decode-only engine steps, where every running sequence decodes one token; llama-server's eval time per token
of a request), the p99 of those steps and of the time from one step's start to the next, and the client's ITL
p99 and TPOT p50 for both. Then kaito's steps by what they carried (sequences decoding, prompt tokens), and
the steps at or above the p99 of those that carried decodes — the steps a client's ITL p99 is made of — with
the longest stretch of them in a row.
"""
import json
import re
import statistics
import sys
from datetime import datetime

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench-forward-pass"
# Line counts of both logs after each run: a run's window is the lines between two marks.
marks = [tuple(map(int, line.split())) for line in open(f"{out}/marks")]


def per_run(path, column, parse):
    """The values parse() finds in the log's lines, grouped by the run whose window wrote them."""
    lines = open(path).read().splitlines()
    groups, start = [], 0
    for mark in marks:
        groups.append([v for line in lines[start : mark[column]] if (v := parse(line)) is not None])
        start = mark[column]
    return groups


def kaito_step(line):
    """(start in ms since the epoch, duration in ms, sequences decoding, prompt tokens) of an engine step."""
    if " decoded" not in line:
        return None
    f = dict(re.findall(r"\b(sequences|tokens|decoding|ms)=([0-9.]+)", line))
    if len(f) < 4:
        return None
    ms, decoding = float(f["ms"]), int(f["decoding"])
    end = datetime.fromisoformat(line.split()[0].rstrip("Z")).timestamp() * 1e3
    return (end - ms, ms, decoding, int(f["tokens"]) - decoding)


def decode_only(step):
    return step[2] > 0 and step[3] == 0


def llama_eval(line):
    m = re.search(r"\beval time =\s*([0-9.]+) ms /\s*(\d+) tokens", line)
    if m and "prompt eval" not in line and int(m.group(2)) > 0:
        return float(m.group(1)) / int(m.group(2))
    return None


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


all_kinds = per_run(f"{out}/kaito.log", 0, kaito_step)
steps = [[s for s in g if decode_only(s)] for g in all_kinds]
evals = per_run(f"{out}/llama-server.log", 1, llama_eval)
if not all(steps) or not all(evals):
    sys.exit("forward-pass-report: a run left no step times in the logs (trace lines or print_timing missing)")
print("| run | forward pass ms, median: kaito step / llama-server eval per token | kaito step p99 ms | kaito step start to next p99 ms "
      "| ITL p99 ms, kaito / llama-server | TPOT p50 ms, kaito / llama-server |")
print("|---|---|---|---|---|---|")
for run, (ks, le) in enumerate(zip(steps, evals), start=1):
    by = {level["target"]: level for level in json.load(open(f"{out}/run-{run}.json"))}
    k, l = by["kaito"], by["llama-server"]
    durations = [s[1] for s in ks]
    starts = [s[0] for s in ks]
    # A pause longer than twice the slowest such step is a request ending and the next one's prompt.
    between = [b - a for a, b in zip(starts, starts[1:]) if b - a < 2 * max(durations)]
    print(f"| {run} | {statistics.median(durations):.2f} / {statistics.median(le):.2f} | {p99(durations):.1f} | {p99(between):.1f} "
          f"| {k['itl_p99_ms']:.1f} / {l['itl_p99_ms']:.1f} | {k['tpot_p50_ms']:.1f} / {l['tpot_p50_ms']:.1f} |")
all_steps = [s[1] for g in steps for s in g]
all_evals = [v for g in evals for v in g]
print(f"\nall runs: kaito decode-only step median {statistics.median(all_steps):.2f} ms ({len(all_steps)} steps), "
      f"llama-server eval per token median {statistics.median(all_evals):.2f} ms ({len(all_evals)} requests)")

every = [s for g in all_kinds for s in g]
kinds = {}
for s in every:
    kinds.setdefault((s[2], s[3]), []).append(s[1])
print("\n| kaito steps: sequences decoding, prompt tokens | steps | median ms | max ms |")
print("|---|---|---|---|")
for (decoding, prompt), ms in sorted(kinds.items()):
    print(f"| {decoding}, {prompt} | {len(ms)} | {statistics.median(ms):.1f} | {max(ms):.1f} |")
with_decodes = [s for s in every if s[2] > 0]
threshold = p99([s[1] for s in with_decodes])
slow = {}
longest = stretch = 0
for s in with_decodes:
    if s[1] >= threshold:
        slow[(s[2], s[3])] = slow.get((s[2], s[3]), 0) + 1
        stretch += 1
        longest = max(longest, stretch)
    else:
        stretch = 0
print(f"\nsteps with decodes at or above their p99 ({threshold:.1f} ms), by (sequences decoding, prompt tokens): "
      + ", ".join(f"{k}: {n}" for k, n in sorted(slow.items()))
      + f"; longest stretch of them in a row: {longest}")

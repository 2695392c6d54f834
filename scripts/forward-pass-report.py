#!/usr/bin/env python3
"""The report of scripts/bench-forward-pass.sh, from what it left in DIR (default target/bench-forward-pass).

    scripts/forward-pass-report.py [DIR]

Reads DIR/kaito.log (kaito's engine trace: `decoded ... sequences=1 tokens=1 ... ms=…` lines), DIR/llama-server.log
(its `print_timing` eval lines), DIR/marks (both logs' line counts after each run) and DIR/run-N.json (`kaito
bench --json`), and prints, run by run: the median forward pass of each server (kaito's decode-only engine step,
llama-server's eval time per token), the p99 of kaito's steps and of the time from one step's start to the
next, and the client's ITL p99 and TPOT p50 for both.
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
    """(start in ms since the epoch, duration in ms) of a decode-only step of one sequence."""
    if " decoded" not in line or "sequences=1 tokens=1 " not in line:
        return None
    m = re.search(r"\bms=([0-9.]+)", line)
    if not m:
        return None
    ms = float(m.group(1))
    end = datetime.fromisoformat(line.split()[0].rstrip("Z")).timestamp() * 1e3
    return (end - ms, ms)


def llama_eval(line):
    m = re.search(r"\beval time =\s*([0-9.]+) ms /\s*(\d+) tokens", line)
    if m and "prompt eval" not in line and int(m.group(2)) > 0:
        return float(m.group(1)) / int(m.group(2))
    return None


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


steps = per_run(f"{out}/kaito.log", 0, kaito_step)
evals = per_run(f"{out}/llama-server.log", 1, llama_eval)
if not all(steps) or not all(evals):
    sys.exit("forward-pass-report: a run left no step times in the logs (trace lines or print_timing missing)")
print("| run | forward pass ms, median: kaito step / llama-server eval per token | kaito step p99 ms | kaito step start to next p99 ms "
      "| ITL p99 ms, kaito / llama-server | TPOT p50 ms, kaito / llama-server |")
print("|---|---|---|---|---|---|")
for run, (ks, le) in enumerate(zip(steps, evals), start=1):
    by = {level["target"]: level for level in json.load(open(f"{out}/run-{run}.json"))}
    k, l = by["kaito"], by["llama-server"]
    starts = [s for s, _ in ks]
    # A pause longer than 100 ms is one request ending and the next one's prompt, not a gap between tokens.
    between = [b - a for a, b in zip(starts, starts[1:]) if b - a < 100]
    durations = [ms for _, ms in ks]
    print(f"| {run} | {statistics.median(durations):.2f} / {statistics.median(le):.2f} | {p99(durations):.1f} | {p99(between):.1f} "
          f"| {k['itl_p99_ms']:.1f} / {l['itl_p99_ms']:.1f} | {k['tpot_p50_ms']:.1f} / {l['tpot_p50_ms']:.1f} |")
all_steps = [ms for g in steps for _, ms in g]
all_evals = [v for g in evals for v in g]
print(f"\nall runs: kaito step median {statistics.median(all_steps):.2f} ms ({len(all_steps)} steps), "
      f"llama-server eval per token median {statistics.median(all_evals):.2f} ms ({len(all_evals)} requests)")

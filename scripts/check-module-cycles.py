#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

A module's imports are the `crate::NAME` paths in its files (test modules at the end of a file left
out). Usage: scripts/check-module-cycles.py [CRATE_DIR ...] (default: every workspace member).
"""
import os
import re
import sys

MEMBERS = ["kaito-core", "kaito-backends", "kaito-k8s", "kaito-cli", "kaito-py"]
# Cycles known and accepted for now: none (the last, kaito-backends quant<->torch, went when the
# quantization quality measurement moved to torch/quant_quality.rs).
KNOWN: set = set()


def imports(crate):
    src = os.path.join(crate, "src")
    graph = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            top = os.path.relpath(path, src).split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main"):
                continue
            text = open(path, encoding="utf-8").read()
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
            for used in re.findall(r"crate::([a-z_][a-z0-9_]*)", text):
                if used != top:
                    graph.setdefault(top, set()).add(used)
    return graph


def cycles(graph):
    found = set()

    def walk(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.add(tuple(sorted(path)))
            elif nxt not in path and nxt in graph:
                walk(start, nxt, path + [nxt])

    for start in graph:
        walk(start, start, [start])
    return found


def main():
    crates = sys.argv[1:] or MEMBERS
    failed = False
    for crate in crates:
        for cycle in sorted(cycles(imports(crate))):
            if (crate, cycle) in KNOWN:
                print(f"check-module-cycles: {crate}: {' <-> '.join(cycle)} (known)")
                continue
            print(f"check-module-cycles: {crate}: modules {' <-> '.join(cycle)} import each other")
            failed = True
    if failed:
        sys.exit(1)
    print(f"check-module-cycles: no cycles between the top-level modules of {', '.join(crates)}")


if __name__ == "__main__":
    main()

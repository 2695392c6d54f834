#!/usr/bin/env bash
# Checks that the declared MSRV (`rust-version`) of every workspace member is true: no package in its
# resolved dependency graph (Cargo.lock, `cargo metadata`) declares a higher `rust_version`.
#
#   scripts/check-msrv.sh          # prints "msrv: declared X, highest needed Y (crate Z)" per member
#
# The graph is the honest superset: `--all-features` (the optional engines: torch/quant, cuda, ...)
# and every target platform, because a library's `rust-version` is a promise for any feature set
# and any target. Dependencies of a member are its normal and build dependencies, transitively;
# its dev-dependencies count too (`cargo test` at the MSRV must work), reported as "dev".
# `cargo metadata` builds nothing, so features that need libtorch or CUDA at build time are fine.
#
# It also checks that the toolchain in use (`rustc --version`) is at least the highest declared MSRV.
# Exits non-zero, naming the dependency (name, version, rust_version), when a member's MSRV is too low.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

meta="$(mktemp)"
trap 'rm -f "$meta"' EXIT
cargo metadata --format-version 1 --all-features --locked >"$meta"

RUSTC_VERSION="$(rustc --version)" python3 - "$meta" <<'EOF'
import json, os, re, sys

meta = json.load(open(sys.argv[1]))
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
members = meta["workspace_members"]


def version_key(v):
    """`1.89`, `1.89.0` -> (1, 89, 0); an undeclared rust_version is (0,)."""
    if not v:
        return (0,)
    parts = [int(x) for x in re.findall(r"\d+", v)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def show(v):
    return ".".join(str(x) for x in version_key(v)[:2]) if v else "none"


def closure(start_ids):
    """{package id: depth} of every package reachable from start_ids over the resolve graph (normal
    and build edges; it holds no dev edges of non-members), breadth first: depth 1 = direct."""
    depth, frontier, d = {}, list(start_ids), 1
    while frontier:
        nxt = []
        for pid in frontier:
            if pid in depth:
                continue
            depth[pid] = d
            nxt.extend(dep["pkg"] for dep in nodes[pid]["deps"])
        frontier, d = nxt, d + 1
    return depth


failed = False
overall = None
highest_declared = (0,)
for mid in members:
    member = packages[mid]
    declared = member.get("rust_version")
    highest_declared = max(highest_declared, version_key(declared))
    direct = {"normal": [], "dev": []}
    for dep in nodes[mid]["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if kinds & {None, "build"}:
            direct["normal"].append(dep["pkg"])
        if "dev" in kinds:
            direct["dev"].append(dep["pkg"])
    normal = closure(direct["normal"])
    dev = {k: v for k, v in closure(direct["dev"]).items() if k not in normal}
    # Every dependency at the highest rust_version; the one named is the closest to the member
    # (`kube`, not its helper crates), the rest are counted. Workspace members are checked as members.
    top, top_key = [], (0,)
    for kind, ids in (("normal", normal), ("dev", dev)):
        for pid, dist in ids.items():
            if pid in members:
                continue
            key = version_key(packages[pid].get("rust_version"))
            if key > top_key:
                top, top_key = [], key
            if key == top_key:
                top.append((kind == "dev", dist, packages[pid]["name"], kind, pid))
    if not declared:
        print(f"msrv: {member['name']}: no rust-version declared", file=sys.stderr)
        failed = True
        continue
    if not top:
        print(f"msrv: {member['name']}: declared {show(declared)}, no dependencies")
        continue
    top.sort()
    _, _, _, kind, pid = top[0]
    p = packages[pid]
    others = f", {len(top) - 1} more at {show(p.get('rust_version'))}" if len(top) > 1 else ""
    dev_note = ", dev-dependency" if kind == "dev" else ""
    line = (f"declared {show(declared)}, highest needed {show(p.get('rust_version'))} "
            f"(crate {p['name']} {p['version']}{dev_note}{others})")
    print(f"msrv: {member['name']}: {line}")
    if overall is None or (top_key, version_key(declared)) > overall[0]:
        overall = ((top_key, version_key(declared)), line)
    if top_key > version_key(declared):
        print(f"error: {member['name']} declares rust-version {declared}, but {p['name']} "
              f"{p['version']}{dev_note} has rust_version {p.get('rust_version')}: "
              f"raise [workspace.package] rust-version in Cargo.toml", file=sys.stderr)
        failed = True

if overall:
    print(f"msrv: {overall[1]}")

rustc = os.environ.get("RUSTC_VERSION", "")
m = re.match(r"rustc (\d+)\.(\d+)\.(\d+)", rustc)
if m:
    have = tuple(int(x) for x in m.groups())
    if have < highest_declared:
        print(f"error: the toolchain in use ({rustc}) is older than the declared MSRV "
              f"{'.'.join(map(str, highest_declared[:2]))}", file=sys.stderr)
        failed = True
    else:
        print(f"msrv: toolchain {rustc.split(' (')[0]} >= {'.'.join(map(str, highest_declared[:2]))}")
sys.exit(1 if failed else 0)
EOF

#!/usr/bin/env bash
# Shared prompt, concurrency 8 alone, eight runs against fresh servers after one warm-up run of the levels
# 1, 2, 4; who goes first rotates run by run (2026-12-01 18:32–18:45 UTC). Run from the repository root.
set -euo pipefail
. scripts/lib/vs-llama-server.sh
out=${OUT:-target/shared8-focused}
rm -rf "$out"
kaito_vs_llama_server_start "$out"
# warm both: one shared run at 1,2,4 (as the sweep reaches 8)
target/release/kaito bench --target "kaito=$KAITO_URL" --target "llama-server=$PEER_URL" --workload shared-prefix --concurrency 1,2,4 --requests 24 --prompt-offset 50000 --json "$out/warm.json" >/dev/null
for run in 1 2 3 4 5 6 7 8; do
  target/release/kaito bench --target "kaito=$KAITO_URL" --target "llama-server=$PEER_URL" --workload shared-prefix \
    --concurrency 8 --requests 24 --prompt-offset $((60000 + run * 1000)) --rotate $((run - 1)) --json "$out/shared-prefix-$run.json" >/dev/null
done
python3 scripts/bench-ratios.py "$out" shared-prefix 8

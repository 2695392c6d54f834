#!/usr/bin/env bash
# How this folder was made (2026-12-01 17:00–17:16 UTC), from the repository root: one `kaito serve` with its
# engine's per-step trace, as scripts/bench-vs-llama-server.sh starts it; the distinct sweep once (as the sweep
# runs it before the shared one), then the shared-prefix levels 1–32 three times, level by level, marking the
# log's line count before each level. Then: python3 step-gaps.py . c8 > report.txt
set -euo pipefail
. scripts/lib/vs-llama-server.sh
out=${OUT:-target/shared8-trace}
rm -rf "$out"
KAITO_SERVE_RUST_LOG=kaito_backends=trace,info kaito_vs_llama_server_start "$out"
mark() { echo "$1 $(wc -l <"$out/kaito.log")" >>"$out/marks"; }
mark start
target/release/kaito bench --target "kaito=$KAITO_URL" --workload distinct --concurrency 1,2,4,8,16,32 --requests 24 --json "$out/distinct.json"
for run in 1 2 3; do
  for c in 1 2 4 8 16 32; do
    mark "shared-$run-c$c"
    target/release/kaito bench --target "kaito=$KAITO_URL" --workload shared-prefix --concurrency "$c" --requests 24 \
      --prompt-offset $((run * 1000)) --json "$out/shared-$run-c$c.json"
  done
done
mark end

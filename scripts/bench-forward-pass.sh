#!/usr/bin/env bash
# Concurrency 1, one sequence, nothing batched: is a gap between two streamed tokens the forward pass, or
# something around it? Starts `kaito serve` (with its engine's per-step trace) and llama.cpp's `llama-server`
# as scripts/bench-vs-llama-server.sh does (same model, 1 thread, 8 parallel sequences, 2048 tokens each),
# runs `kaito bench --workload $WORKLOAD --concurrency $CONCURRENCY` (default distinct, 1) against both RUNS
# times, then prints, from the same window, the median of kaito's decode-only engine steps (the `decoded` trace lines: llama_decode of one
# token) beside llama-server's own eval time per token (its `print_timing` lines), and each run's client
# figures (scripts/forward-pass-report.py). Equal forward passes with unequal client ITL would point at the HTTP path.
#   [RUNS=3] [REQUESTS=24] [CONCURRENCY=1] [WORKLOAD=distinct|shared-prefix] scripts/bench-forward-pass.sh [--max-tokens 64]
# (At a higher CONCURRENCY a decode-only step serves every running sequence, and llama-server's eval time per
# token of a request is its time per step. With several levels, CONCURRENCY=1,2,4,8, the steps are pooled over
# them and each run's client figures are its last level's.)
# Logs and JSON land in target/bench-forward-pass/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=target/bench-forward-pass
rm -rf "$out"
# shellcheck source=scripts/lib/vs-llama-server.sh
. scripts/lib/vs-llama-server.sh
KAITO_SERVE_RUST_LOG=kaito_backends=trace,info kaito_vs_llama_server_start "$out"

runs="${RUNS:-3}"
for run in $(seq 1 "$runs"); do
  echo "### run $run of $runs"
  target/release/kaito bench --target "kaito=$KAITO_URL" --target "llama-server=$PEER_URL" \
    --workload "${WORKLOAD:-distinct}" --concurrency "${CONCURRENCY:-1}" --requests "${REQUESTS:-24}" --prompt-offset $((run * 1000 + 7000)) \
    --json "$out/run-$run.json" "$@"
  echo "$(wc -l <"$out/kaito.log") $(wc -l <"$out/llama-server.log")" >>"$out/marks"
done

echo
scripts/forward-pass-report.py "$out"

#!/usr/bin/env bash
# Runs the `kaito bench` concurrency sweep against `kaito serve` and llama.cpp's `llama-server`, alternately
# level by level, with the same model (SmolLM2-135M-Instruct Q4_1), 1 thread, 8 parallel sequences and a
# 2048-token context per sequence; prints both tables with ratios (kaito ÷ llama-server).
#   [BENCH_RUNS=3] scripts/bench-vs-llama-server.sh [--concurrency 1,2,4,8,16,32] [--requests 8] [--max-tokens 64]
# With BENCH_RUNS > 1 the sweep is repeated against the same servers (new prompts each run) and the
# median ratios (tok/s, TTFT p99, ITL p99; scripts/bench-ratios.py) are printed. The server that goes first
# changes level by level and run by run (`kaito bench --rotate`), so with an even BENCH_RUNS each goes first
# at each level equally often. Each level also records the machine's steal time. Results (JSON) land in target/bench/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib/vs-llama-server.sh
. scripts/lib/vs-llama-server.sh
out=target/bench
kaito_vs_llama_server_start "$out"

# The sum of a Prometheus counter's samples at URL/metrics.
counter() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d", s }'; }
# Prompt tokens each server computed and reused from its cache, as its own metrics count them.
prompt_work() {
  local k="$KAITO_URL" l="$PEER_URL"
  local kp kc lp lc
  kp=$(counter "$k" vllm:prompt_tokens_total)
  kc=$(counter "$k" vllm:prefix_cache_hits_total)
  lp=$(counter "$l" llamacpp:prompt_tokens_total)
  lc=$(counter "$l" llamacpp:prompt_tokens_cached_total)
  echo "$((kp - kc)) $kc $lp $lc"
}

runs="${BENCH_RUNS:-1}"
for workload in distinct shared-prefix; do
  echo
  echo "## workload: $workload"
  read -r k0 kc0 l0 lc0 < <(prompt_work)
  for run in $(seq 1 "$runs"); do
    [ "$runs" = 1 ] || echo "### run $run of $runs"
    target/release/kaito bench --target "kaito=$KAITO_URL" --target "llama-server=$PEER_URL" \
      --workload "$workload" --prompt-offset $(((run - 1) * 1000)) --rotate $((run - 1)) \
      --json "$out/$workload-$run.json" "$@"
  done
  read -r k1 kc1 l1 lc1 < <(prompt_work)
  echo
  echo "prompt tokens computed (reused from cache) over the sweep: kaito $((k1 - k0)) ($((kc1 - kc0))), llama-server $((l1 - l0)) ($((lc1 - lc0)))"
  if [ "$runs" != 1 ]; then
    python3 scripts/bench-ratios.py "$out" "$workload" "$runs"
  fi
done

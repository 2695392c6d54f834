#!/usr/bin/env bash
# Runs the `kaito bench` concurrency sweep against `kaito serve` and llama.cpp's `llama-server`, alternately
# level by level, with the same model (SmolLM2-135M-Instruct Q4_1), 1 thread, 8 parallel sequences and a
# 2048-token context per sequence; prints both tables with ratios (kaito ÷ llama-server).
#   [BENCH_RUNS=3] scripts/bench-vs-llama-server.sh [--concurrency 1,2,4,8,16,32] [--requests 8] [--max-tokens 64]
# With BENCH_RUNS > 1 the sweep is repeated against the same servers (new prompts each run) and the
# median ratios (tok/s, TTFT p99, ITL p99; scripts/bench-ratios.py) are printed. Results (JSON) land in target/bench/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
cargo build --release -p kaito-cli --bin kaito >&2
peer="$(scripts/build-llama-server.sh)"
model="$(target/release/kaito pull | tail -n 1)"
threads="${BENCH_THREADS:-1}"
parallel="${BENCH_PARALLEL:-8}"
ctx=2048
out=target/bench
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kport=$(free_port)
lport=$(free_port)

target/release/kaito serve --model "$model" --served-model-name smollm2-135m-instruct --host 127.0.0.1 --port "$kport" \
  --threads "$threads" --parallel "$parallel" --ctx-size "$ctx" --max-queue 256 >"$out/kaito.log" 2>&1 &
kpid=$!
# llama-server's -c is the total context, split across its -np slots.
"$peer" -m "$model" --host 127.0.0.1 --port "$lport" -t "$threads" -tb "$threads" -np "$parallel" \
  -c $((ctx * parallel)) --metrics >"$out/llama-server.log" 2>&1 &
lpid=$!
trap 'kill $kpid $lpid 2>/dev/null || true; wait 2>/dev/null || true' EXIT

wait_ready() {
  for _ in $(seq 1 240); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; then return 0; fi
    sleep 0.5
  done
  echo "bench: $1 never became ready" >&2
  exit 1
}
wait_ready "http://127.0.0.1:$kport/ready"
wait_ready "http://127.0.0.1:$lport/health"

# The sum of a Prometheus counter's samples at URL/metrics.
counter() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d", s }'; }
# Prompt tokens each server computed and reused from its cache, as its own metrics count them.
prompt_work() {
  local k="http://127.0.0.1:$kport" l="http://127.0.0.1:$lport"
  local kp kc lp lc
  kp=$(counter "$k" vllm:prompt_tokens_total)
  kc=$(counter "$k" vllm:prefix_cache_hits_total)
  lp=$(counter "$l" llamacpp:prompt_tokens_total)
  lc=$(counter "$l" llamacpp:prompt_tokens_cached_total)
  echo "$((kp - kc)) $kc $lp $lc"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads=$threads parallel=$parallel ctx/seq=$ctx"
runs="${BENCH_RUNS:-1}"
for workload in distinct shared-prefix; do
  echo
  echo "## workload: $workload"
  read -r k0 kc0 l0 lc0 < <(prompt_work)
  for run in $(seq 1 "$runs"); do
    [ "$runs" = 1 ] || echo "### run $run of $runs"
    target/release/kaito bench --target "kaito=http://127.0.0.1:$kport" --target "llama-server=http://127.0.0.1:$lport" \
      --workload "$workload" --prompt-offset $(((run - 1) * 1000)) --json "$out/$workload-$run.json" "$@"
  done
  read -r k1 kc1 l1 lc1 < <(prompt_work)
  echo
  echo "prompt tokens computed (reused from cache) over the sweep: kaito $((k1 - k0)) ($((kc1 - kc0))), llama-server $((l1 - l0)) ($((lc1 - lc0)))"
  if [ "$runs" != 1 ]; then
    python3 scripts/bench-ratios.py "$out" "$workload" "$runs"
  fi
done

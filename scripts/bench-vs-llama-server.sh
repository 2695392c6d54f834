#!/usr/bin/env bash
# Runs the `kaito bench` concurrency sweep against `kaito serve` and llama.cpp's `llama-server`, alternately
# level by level, with the same model (SmolLM2-135M-Instruct Q4_1), 1 thread, 8 parallel sequences and a
# 2048-token context per sequence; prints both tables with ratios (kaito ÷ llama-server).
#   scripts/bench-vs-llama-server.sh [--concurrency 1,2,4,8,16,32] [--requests 8] [--max-tokens 64]
# Results (JSON) land in target/bench/.
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
  -c $((ctx * parallel)) >"$out/llama-server.log" 2>&1 &
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

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads=$threads parallel=$parallel ctx/seq=$ctx"
for workload in distinct shared-prefix; do
  echo
  echo "## workload: $workload"
  target/release/kaito bench --target "kaito=http://127.0.0.1:$kport" --target "llama-server=http://127.0.0.1:$lport" \
    --workload "$workload" --json "$out/$workload.json" "$@"
done

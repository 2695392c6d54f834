#!/usr/bin/env bash
# Concurrency 1, one sequence, nothing batched: is a gap between two streamed tokens the forward pass, or
# something around it? Starts `kaito serve` (with its engine's per-step trace) and llama.cpp's `llama-server`
# as scripts/bench-vs-llama-server.sh does (same model, 1 thread, 8 parallel sequences, 2048 tokens each),
# runs `kaito bench --workload distinct --concurrency 1` against both RUNS times, then prints, from the same
# window, the median of kaito's decode-only engine steps (the `decoded` trace lines: llama_decode of one
# token) beside llama-server's own eval time per token (its `print_timing` lines), and each run's client
# figures (scripts/forward-pass-report.py). Equal forward passes with unequal client ITL would point at the HTTP path.
#   [RUNS=3] scripts/bench-forward-pass.sh [--requests 24] [--max-tokens 64]
# Logs and JSON land in target/bench-forward-pass/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
cargo build --release -p kaito-cli --bin kaito >&2
peer="$(scripts/build-llama-server.sh)"
model="$(target/release/kaito pull | tail -n 1)"
out=target/bench-forward-pass
rm -rf "$out"
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kport=$(free_port)
lport=$(free_port)

RUST_LOG=kaito_backends=trace,info target/release/kaito serve --model "$model" --served-model-name smollm2-135m-instruct \
  --host 127.0.0.1 --port "$kport" --threads 1 --parallel 8 --ctx-size 2048 --max-queue 256 >"$out/kaito.log" 2>&1 &
kpid=$!
"$peer" -m "$model" --host 127.0.0.1 --port "$lport" -t 1 -tb 1 -np 8 -c 16384 --metrics >"$out/llama-server.log" 2>&1 &
lpid=$!
trap 'kill $kpid $lpid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for url in "http://127.0.0.1:$kport/ready" "http://127.0.0.1:$lport/health"; do
  for _ in $(seq 1 240); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && continue 2
    sleep 0.5
  done
  echo "bench-forward-pass: $url never became ready" >&2
  exit 1
done

runs="${RUNS:-3}"
for run in $(seq 1 "$runs"); do
  echo "### run $run of $runs"
  target/release/kaito bench --target "kaito=http://127.0.0.1:$kport" --target "llama-server=http://127.0.0.1:$lport" \
    --workload distinct --concurrency 1 --requests 24 --prompt-offset $((run * 1000 + 7000)) \
    --json "$out/run-$run.json" "$@"
  echo "$(wc -l <"$out/kaito.log") $(wc -l <"$out/llama-server.log")" >>"$out/marks"
done

echo
scripts/forward-pass-report.py "$out"

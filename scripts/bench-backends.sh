#!/usr/bin/env bash
# Side-by-side `kaito bench` of the engines on the same SmolLM2-135M-Instruct weights, alternating
# level by level: llama.cpp on the Q4_1 GGUF, torch f32 and bf16 on its `kaito convert` checkpoint,
# and the quant engine (int8, int4-g32) on that checkpoint. 1 thread, 8 parallel sequences each.
#   scripts/bench-backends.sh [--concurrency 1,8] [--requests 8] [--max-tokens 64]
# Results (JSON) land in target/bench/backends.json; servers' logs beside it. KAITO_BIN=path skips
# the build and uses that binary (built with --features quant).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
eval "$(scripts/libtorch-env.sh)"
if [ -z "${KAITO_BIN:-}" ]; then
  cargo build --release -p kaito-cli --features quant >&2
fi
kaito="${KAITO_BIN:-target/release/kaito}"
gguf="$($kaito pull | tail -n 1)"
out=target/bench
mkdir -p "$out"
hf="$out/smollm2-hf"
[ -f "$hf/config.json" ] || $kaito convert --model "$gguf" --out "$hf" --force >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
names=(llama-cpp torch-f32 torch-bf16 quant-int8 quant-int4-g32)
args=("--model $gguf"
  "--model $hf --backend torch --dtype f32"
  "--model $hf --backend torch --dtype bf16"
  "--model $hf --backend quant --quantization int8"
  "--model $hf --backend quant --quantization int4-g32")
pids=()
targets=()
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
for i in "${!names[@]}"; do
  port=$(free_port)
  # shellcheck disable=SC2086
  $kaito serve ${args[$i]} --served-model-name smollm2-135m-instruct --host 127.0.0.1 --port "$port" \
    --threads 1 --parallel 8 --ctx-size 2048 --max-queue 256 >"$out/${names[$i]}.log" 2>&1 &
  pids+=($!)
  targets+=(--target "${names[$i]}=http://127.0.0.1:$port")
  for _ in $(seq 1 240); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ] && break
    sleep 0.5
  done
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
$kaito bench "${targets[@]}" --json "$out/backends.json" "$@"
for i in "${!names[@]}"; do
  echo "${names[$i]}: RSS $(( $(awk '/VmRSS/ {print $2}' "/proc/${pids[$i]}/status") / 1024 )) MiB"
done

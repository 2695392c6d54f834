#!/usr/bin/env bash
# GPU check of the torch and quant engines, for a machine with CUDA and PyTorch 2.11 but no Rust:
# it builds nothing. Carry a `kaito` built here for CUDA:
#
#   eval "$(scripts/libtorch-env.sh)"
#   KAITO_TORCH_CUDA=1 cargo build --release -p kaito-cli --features quant   # keeps libtorch_cuda linked
#   strip -o target/gpu/kaito target/release/kaito
#
# and a checkpoint directory (`kaito convert --dtype f16` of the bundled model is ~270 MB), then on
# the GPU machine:
#
#   scripts/gpu-check.sh target/gpu/kaito CHECKPOINT_DIR [OUT_DIR]
#
# It serves the checkpoint three times on cuda:0 — torch f16, quant int8, quant int4 — benches them
# alternately (`kaito bench`, concurrency 1 and 8) and prints tokens/s and each server's peak GPU
# memory (nvidia-smi, sampled every 0.2 s).
set -euo pipefail
kaito="$(realpath "${1:?usage: gpu-check.sh KAITO_BIN CHECKPOINT_DIR [OUT_DIR]}")"
model="$(realpath "${2:?usage: gpu-check.sh KAITO_BIN CHECKPOINT_DIR [OUT_DIR]}")"
out="${3:-${OUT:-target/gpu-check}}"
mkdir -p "$out"

# The machine's own PyTorch libraries (torch/lib and every nvidia/*/lib) serve the carried binary.
torch_libs="$(python3 - <<'PY'
import glob, os, torch
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
site = os.path.dirname(os.path.dirname(torch.__file__))
print(":".join([lib] + sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib")))))
PY
)"
export LD_LIBRARY_PATH="$torch_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A port pid
start() { # name, extra args...
  local name=$1; shift
  port[$name]=$(free_port)
  "$kaito" serve --model "$model" --served-model-name smollm2-135m-instruct --host 127.0.0.1 \
    --port "${port[$name]}" --device cuda:0 --parallel 8 --ctx-size 2048 "$@" >"$out/$name.log" 2>&1 &
  pid[$name]=$!
}
start f16 --backend torch --dtype f16
start int8 --backend quant --quantization int8 --dtype f16
start int4 --backend quant --quantization int4 --dtype f16
trap 'kill ${pid[*]} 2>/dev/null || true; kill $sampler 2>/dev/null || true' EXIT

for name in f16 int8 int4; do
  for _ in $(seq 1 240); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$name]}/ready")" = 200 ] && continue 2
    kill -0 "${pid[$name]}" 2>/dev/null || { echo "gpu-check: $name server exited:"; tail -20 "$out/$name.log"; exit 1; }
    sleep 0.5
  done
  echo "gpu-check: $name never became ready"; exit 1
done

( while true; do nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits; sleep 0.2; done ) \
  >"$out/memory.csv" 2>/dev/null &
sampler=$!

"$kaito" bench --target "f16=http://127.0.0.1:${port[f16]}" --target "int8=http://127.0.0.1:${port[int8]}" \
  --target "int4=http://127.0.0.1:${port[int4]}" --concurrency 1,8 --requests 16 --max-tokens 128 \
  --json "$out/bench.json" | tee "$out/bench.txt"

kill $sampler 2>/dev/null || true
echo
echo "peak GPU memory per server (MiB, whole process: weights + KV cache + CUDA context):"
for name in f16 int8 int4; do
  peak=$(awk -F', ' -v p="${pid[$name]}" '$1 == p && $2 > m { m = $2 } END { print m + 0 }' "$out/memory.csv")
  echo "  $name: $peak"
  grep -m1 "checkpoint loaded" "$out/$name.log" | sed 's/^/    /' || true
done

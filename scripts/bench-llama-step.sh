#!/usr/bin/env bash
# Times llama.cpp's forward pass in the two builds the sweep against llama-server compares: the llama.cpp
# inside kaito (`llama-cpp-sys-2`, as cargo built it) and llama-server's (the source vendored in
# llama-cpp-python 0.3.36, scripts/build-llama-server.sh). One program, scripts/llama-step-bench.cpp, is
# compiled against each and the two run in turn, ROUNDS times, the first one alternating; neither server is
# involved. Prints every run's line and the medians: the decode step of SEQS sequences (its p50 and mean
# over GEN steps) and the step that reads one sequence's own OWN question tokens beside nothing else.
#   [ROUNDS=6] scripts/bench-llama-step.sh [seqs=8] [prefix=300] [own=20] [gen=64] [reps=3] [fa=auto|on|off]
#                                          [mmap=auto|on|off] [ubatch=512] [threads=1]
# Output in target/bench/llama-step/.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-6}"
# shellcheck source=scripts/lib/vs-llama-server.sh
. scripts/lib/vs-llama-server.sh
kaito_vs_llama_server_prepare
model="$KAITO_VS_MODEL"
peer_tree="$(dirname "$(dirname "$(dirname "$KAITO_VS_PEER")")")" # …/vendor/llama.cpp
# Every llama-cpp-sys-2 build in target/ holds the same llama.cpp source; take the newest.
kaito_out="$(dirname "$(dirname "$(ls -t target/release/build/llama-cpp-sys-2-*/out/lib/libllama.a | head -n 1)")")"
out=target/bench/llama-step
mkdir -p "$out"
g++ -O2 -std=c++17 scripts/llama-step-bench.cpp -I"$peer_tree/include" -I"$peer_tree/ggml/include" \
  -L"$peer_tree/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$peer_tree/build/bin" -o "$out/step-llama-server"
g++ -O2 -std=c++17 scripts/llama-step-bench.cpp -I"$kaito_out/include" "$kaito_out"/lib/libllama.a \
  "$kaito_out"/lib/libggml.a "$kaito_out"/lib/libggml-cpu.a "$kaito_out"/lib/libggml-base.a -fopenmp -lpthread \
  -o "$out/step-kaito"
log="$out/runs.txt"
: >"$log"
for round in $(seq 1 "$rounds"); do
  order="kaito llama-server"
  [ $((round % 2)) -eq 0 ] && order="llama-server kaito"
  for who in $order; do
    "$out/step-$who" model="$model" label="$who" "$@" | tee -a "$log"
  done
done
python3 - "$log" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, *fields = line.split()
    runs.setdefault(label, []).append(dict(f.split("=", 1) for f in fields))
keys = ["step_p50", "step_mean", "step_max", "own_ms_per_seq"]
print(f"medians of {len(runs['kaito'])} runs each (ms) | " + " | ".join(keys))
med = {who: {k: statistics.median(float(r[k]) for r in rs) for k in keys} for who, rs in runs.items()}
for who in ("kaito", "llama-server"):
    print(f"{who:13} | " + " | ".join(f"{med[who][k]:.2f}" for k in keys))
print("kaito ÷ llama-server | " + " | ".join(f"{med['kaito'][k] / med['llama-server'][k]:.3f}" for k in keys))
PY

# shellcheck shell=bash
# `kaito serve` and llama.cpp's own `llama-server` side by side, as the benchmarks against the peer start
# them: the same model (SmolLM2-135M-Instruct Q4_1), $BENCH_THREADS threads (default 1), $BENCH_PARALLEL
# parallel sequences (default 8), a 2048-token context per sequence. Source it from the repository root, then:
#   kaito_vs_llama_server_start OUT   # builds kaito and the peer where missing, starts both (logs in
#                                     # OUT/kaito.log and OUT/llama-server.log), sets KAITO_URL and PEER_URL,
#                                     # waits until both answer; both stop when the script exits
# $KAITO_SERVE_RUST_LOG, when set, is kaito's RUST_LOG (its engine trace, say).

# Builds kaito and the peer where missing and fetches the model; sets KAITO_VS_PEER (llama-server's path)
# and KAITO_VS_MODEL (the GGUF file's path).
kaito_vs_llama_server_prepare() {
  scripts/bootstrap.sh
  cargo build --release -p kaito-cli --bin kaito >&2
  KAITO_VS_PEER="$(scripts/build-llama-server.sh)"
  KAITO_VS_MODEL="$(target/release/kaito pull | tail -n 1)"
}

kaito_vs_llama_server_start() {
  local out="$1" peer model threads="${BENCH_THREADS:-1}" parallel="${BENCH_PARALLEL:-8}" ctx=2048 kport lport url
  kaito_vs_llama_server_prepare
  peer="$KAITO_VS_PEER"
  model="$KAITO_VS_MODEL"
  mkdir -p "$out"
  # Two free ports, bound at once so that they differ.
  read -r kport lport < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
  env ${KAITO_SERVE_RUST_LOG:+RUST_LOG="$KAITO_SERVE_RUST_LOG"} target/release/kaito serve --model "$model" \
    --served-model-name smollm2-135m-instruct --host 127.0.0.1 --port "$kport" --threads "$threads" \
    --parallel "$parallel" --ctx-size "$ctx" --max-queue 256 >"$out/kaito.log" 2>&1 &
  KAITO_VS_PIDS="$!"
  # llama-server's -c is the total context, split across its -np slots.
  "$peer" -m "$model" --host 127.0.0.1 --port "$lport" -t "$threads" -tb "$threads" -np "$parallel" \
    -c $((ctx * parallel)) --metrics >"$out/llama-server.log" 2>&1 &
  KAITO_VS_PIDS="$KAITO_VS_PIDS $!"
  # shellcheck disable=SC2064  # the pids are fixed now
  trap "kill $KAITO_VS_PIDS 2>/dev/null || true; wait 2>/dev/null || true" EXIT
  KAITO_URL="http://127.0.0.1:$kport"
  PEER_URL="http://127.0.0.1:$lport"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads=$threads parallel=$parallel ctx/seq=$ctx"
  for url in "$KAITO_URL/ready" "$PEER_URL/health"; do
    for _ in $(seq 1 240); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && continue 2
      sleep 0.5
    done
    echo "$url never became ready (logs in $out)" >&2
    exit 1
  done
}

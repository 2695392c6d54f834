#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` (the peer kaito-rs is measured against) from the llama.cpp source
# vendored in the PyPI sdist llama-cpp-python==0.3.36. The build is cached outside the repository in
# $KAITO_PEER_DIR (default ~/.cache/kaito-peer); prints the binary's path.
set -euo pipefail
version=0.3.36
dir="${KAITO_PEER_DIR:-$HOME/.cache/kaito-peer}"
src="$dir/llama_cpp_python-$version"
bin="$src/vendor/llama.cpp/build/bin/llama-server"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v cmake >/dev/null || { echo "build-llama-server: needs cmake (run scripts/bootstrap.sh)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
if [ ! -f "llama_cpp_python-$version.tar.gz" ]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d .
fi
[ -d "$src" ] || tar xzf "llama_cpp_python-$version.tar.gz"
cd "$src/vendor/llama.cpp"
cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON >&2
cmake --build build --target llama-server -j "$(nproc)" >&2
echo "$bin"

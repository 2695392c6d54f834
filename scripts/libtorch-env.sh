#!/usr/bin/env bash
# Installs the slim libtorch that the `torch` and `quant` backends link against (once, cached
# outside the repository) and prints the exports cargo and the built binaries need:
#
#   eval "$(scripts/libtorch-env.sh)"
#   cargo build --release --features kaito-backends/quant
#
# `tch` 0.24.0 pins PyTorch 2.11.0. PyPI ships only CUDA builds of torch for Linux; they run on
# CPU. `--no-deps` plus the two CUDA packages its libraries load at start-up is enough for tch
# (~540 MB download, 1.2 GB on disk); Python never imports torch from here.
#
# KAITO_LIBTORCH_DIR overrides where it goes (default ~/.cache/kaito-libtorch/torch-2.11.0).
# An exported LIBTORCH (your own libtorch 2.11.0, e.g. a CUDA build) is used as it is.
set -euo pipefail
version=2.11.0
cuda_lib=""
if [ -z "${LIBTORCH:-}" ]; then
  dir="${KAITO_LIBTORCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kaito-libtorch/torch-$version}"
  if [ ! -f "$dir/.complete" ]; then
    echo "libtorch: installing torch==$version (slim, no Python dependencies) into $dir" >&2
    rm -rf "$dir.partial" "$dir.pip"
    # A private venv only for pip: a system Python may lack pip or refuse installs (PEP 668).
    python3 -m venv "$dir.pip" >&2
    "$dir.pip/bin/python" -m pip install -q --disable-pip-version-check --no-deps --target "$dir.partial" \
      "torch==$version" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
    rm -rf "$dir.pip"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    touch "$dir/.complete"
  fi
  LIBTORCH="$dir/torch"
  cuda_lib="$dir/nvidia/cu13/lib"
fi
ld="$LIBTORCH/lib${cuda_lib:+:$cuda_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf 'export LIBTORCH=%q\nexport LD_LIBRARY_PATH=%q\n' "$LIBTORCH" "$ld"

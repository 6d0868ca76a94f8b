#!/usr/bin/env bash
# Download, on a machine WITH network, the wheels a GPU box without network needs for the DNN
# (Keras 3 and its small dependencies; the boxes carry CuPy, PyTorch, JAX and numba but no
# Keras), so they can travel with the working tree and be installed offline by check.sh:
#
#   bash bench/gpu/prepare_wheels.sh [DEST] [PYTHON_VERSION]
#       DEST            default bench/gpu/wheels (keep it out of git: it is a download cache)
#       PYTHON_VERSION  the box's Python, e.g. 3.12 (default: this machine's)
#   RECSYS_FAST_EXTRA_WHEELS="pandas scikit-learn"  more packages to fetch the same way
#
# Versions are pinned to the ones installed here when they are (what the tests ran with).
# Everything is fetched with --no-deps: the list below is the whole closure that a box with
# numpy already installed lacks. On the box: pip install --no-index --no-deps <DEST>/*.whl
# (check.sh does this when `import keras` fails). Total size is about 15 MB.
set -euo pipefail

DEST="${1:-bench/gpu/wheels}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
PYVER="${2:-$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
PKGS=(keras namex optree absl-py rich markdown-it-py mdurl pygments h5py ml-dtypes packaging
  typing-extensions ${RECSYS_FAST_EXTRA_WHEELS:-})

mkdir -p "$DEST"
specs=()
for p in "${PKGS[@]}"; do
  v="$("$PY" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass" "$p")"
  specs+=("${p}${v:+==$v}")
done
echo "fetching for CPython $PYVER (manylinux x86_64): ${specs[*]}"
"$PY" -m pip download --no-deps --only-binary=:all: --dest "$DEST" \
  --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any \
  "${specs[@]}"
du -sh "$DEST"
ls "$DEST"

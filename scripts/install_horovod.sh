#!/usr/bin/env bash
# Build and install Horovod 0.28.1 (PyTorch + gloo, no MPI/TF/MXNet) into a Python environment.
#
# Horovod 0.28.1, the last release, does not build against torch >= 2.1 as published: its CMake
# pins C++14 while torch's headers need C++17. This script downloads the sdist from PyPI,
# patches the C++ standard to 17 in the two CMakeLists.txt files, builds it against the torch
# already installed (--no-build-isolation) and checks `horovodrun --gloo -np 2`.
#
# Usage: scripts/install_horovod.sh [PYTHON]   (default: .venv/bin/python, else python3)
# Needs: torch installed in that environment, cmake >= 3.13, g++ with C++17. 90 s on an idle 2-core box, several minutes under load.
# Idempotent: does nothing when the environment already has a working horovod.torch with gloo.
# The built wheel is kept in ~/.cache/itwinai-ray/ (HOROVOD_WHEEL_CACHE) and reused next time.
set -euo pipefail

VERSION=0.28.1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
BIN="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")"

works() {
  "$PY" - <<'PY' 2>/dev/null
import horovod, horovod.torch as hvd
assert horovod.__version__ == "0.28.1", horovod.__version__
assert hvd.gloo_built(), "horovod built without gloo"
PY
}

if works; then
  echo "install_horovod: horovod $VERSION with gloo already works in $("$PY" -c 'import sys; print(sys.prefix)'); nothing to do"
  exit 0
fi

"$PY" -c 'import torch' 2>/dev/null || {
  echo "install_horovod: torch is not installed in $PY; install it first (pip install torch==2.13.0)" >&2
  exit 1
}
for tool in cmake g++; do
  command -v "$tool" >/dev/null || { echo "install_horovod: '$tool' is missing (apt-get install cmake g++)" >&2; exit 1; }
done

WORK="$(mktemp -d -t horovod-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# A wheel built here before, for the same horovod, torch and Python, is reused (a clean clone
# then installs in seconds instead of building for minutes). HOROVOD_WHEEL_CACHE= (empty)
# turns the cache off. A cached wheel that does not work is removed and rebuilt.
TAG="$("$PY" -c 'import sys, torch; print(f"torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}")')"
CACHE="${HOROVOD_WHEEL_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/itwinai-ray/horovod-$VERSION-$TAG}"
if [[ -n "$CACHE" ]] && compgen -G "$CACHE/horovod-$VERSION-*.whl" >/dev/null; then
  "$PY" -m pip install -q "setuptools>=68" wheel packaging cloudpickle psutil pyyaml cffi
  "$PY" -m pip install -q --no-deps --force-reinstall "$CACHE"/horovod-"$VERSION"-*.whl
  if works; then
    echo "install_horovod: horovod $VERSION installed from the wheel built earlier in $CACHE"
  else
    echo "install_horovod: the cached wheel in $CACHE does not work; rebuilding" >&2
    rm -rf "$CACHE"
  fi
fi
build() {  # from the sdist, C++17-patched, into $WORK/wheel, installed and cached
  "$PY" -m pip download -q --no-binary :all: --no-deps "horovod==$VERSION" -d "$WORK"
  tar -xzf "$WORK"/horovod-"$VERSION".tar.gz -C "$WORK"
  SRC="$WORK/horovod-$VERSION"

  # The C++ standard is pinned in these two files (top level and the torch extension).
  for f in "$SRC/CMakeLists.txt" "$SRC/horovod/torch/CMakeLists.txt"; do
    grep -q "CMAKE_CXX_STANDARD 14\|c++14" "$f" || { echo "install_horovod: no C++14 pin found in $f" >&2; exit 1; }
    sed -i -e 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/g' -e 's/c++14/c++17/g' "$f"
  done

  # Build tools and Horovod's runtime dependencies first (a fresh venv's setuptools may lack
  # bdist_wheel); pip keeps the installed torch as it is.
  "$PY" -m pip install -q "setuptools>=68" wheel packaging cloudpickle psutil pyyaml cffi

  echo "install_horovod: building horovod $VERSION (pytorch, gloo; no MPI/TF/MXNet), a few minutes on 2 cores"
  HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    MAKEFLAGS="-j${HOROVOD_BUILD_JOBS:-$(nproc)}" \
    "$PY" -m pip wheel -q --no-build-isolation --no-deps --no-cache-dir -w "$WORK/wheel" "$SRC"
  "$PY" -m pip install -q --no-deps "$WORK"/wheel/horovod-*.whl

  works || { echo "install_horovod: horovod installed but horovod.torch with gloo does not import" >&2; exit 1; }
  if [[ -n "$CACHE" ]]; then
    mkdir -p "$CACHE" && cp "$WORK"/wheel/horovod-*.whl "$CACHE"/
  fi
}
works || build

# Smoke test: two gloo processes on this host agree on size and an allreduce.
cat > "$WORK/smoke.py" <<'PY'
import torch, horovod.torch as hvd
hvd.init()
total = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum)
assert hvd.size() == 2 and total.item() == 3.0, (hvd.size(), total)
PY
OMP_NUM_THREADS=1 "$BIN/horovodrun" --gloo -np 2 -H localhost:2 "$PY" "$WORK/smoke.py"
echo "install_horovod: horovod $VERSION installed; horovodrun --gloo -np 2 works"

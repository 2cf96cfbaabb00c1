#!/usr/bin/env bash
# Install elmo for development or use: `make install` runs this (so does a machine without make).
#
#   bash scripts/install.sh              # CPU build of torch (the default)
#   TORCH=cuda bash scripts/install.sh   # CUDA build of torch, plus the gpu extra (triton, torchao)
#
# 1. Creates the virtual environment $VENV (default .venv; the active one if a venv is active)
#    with `python3 -m venv`, unless it exists.
# 2. Installs torch, pinned: the CPU build from PyTorch's CPU wheel index, or, where that index
#    cannot be reached, torch from the default index (on Linux that is PyPI's CUDA build, several
#    GB); TORCH=cuda installs PyPI's CUDA build directly.
# 3. Installs elmo editable with every extra, versions pinned by .ci/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu
TORCH=${TORCH:-cpu}
VENV=${VENV:-${VIRTUAL_ENV:-.venv}}
PYTHON3=${PYTHON3:-python3}  # the interpreter that creates the virtual environment

case "$TORCH" in
  cpu) extras=all ;;
  cuda) extras=all,gpu ;;
  *) echo "error: TORCH must be cpu or cuda, not '$TORCH'" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  echo "install: creating the virtual environment $VENV ($PYTHON3 -m venv)"
  if ! "$PYTHON3" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: '$PYTHON3 -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
venv_pip() { "$VENV/bin/python" -m pip "$@"; }

venv_pip install -q --upgrade pip

index_reachable() {
  "$VENV/bin/python" - "$1" <<'PY'
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=10).close()
except OSError:
    sys.exit(1)
PY
}

if [ "$TORCH" = cpu ]; then
  if index_reachable "$CPU_INDEX" \
    && venv_pip install -q --index-url "$CPU_INDEX" "torch==$TORCH_VERSION"; then
    echo "install: torch $TORCH_VERSION, CPU build, from $CPU_INDEX"
  else
    echo "install: $CPU_INDEX is not reachable; torch $TORCH_VERSION from the default index"
    venv_pip install -q "torch==$TORCH_VERSION"
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "install: this machine has an NVIDIA GPU: 'make install TORCH=cuda' installs the CUDA build"
  fi
else
  venv_pip install -q "torch==$TORCH_VERSION"
fi

# .ci/constraints.txt pins the versions CI tests, resolved on CPython 3.11 (some of them, such as
# soupsieve 4.1.3, need 3.11.5 or newer). Another Python gets the newest versions that
# pyproject.toml allows instead of an unsatisfiable pin (Debian 12's python3 is 3.11.2).
if "$VENV/bin/python" -c 'import sys; sys.exit(not (3, 11, 5) <= sys.version_info[:3] < (3, 12))'; then
  venv_pip install -q -c .ci/constraints.txt -e ".[$extras]"
else
  echo "install: Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')" \
    "is not the 3.11.5+ of .ci/constraints.txt: newest compatible versions, torch still $TORCH_VERSION"
  venv_pip install -q -e ".[$extras]" "torch==$TORCH_VERSION"
fi
"$VENV/bin/python" -c 'import torch; print("install: done: torch", torch.__version__,
      "(CUDA available)" if torch.cuda.is_available() else "(CPU)")'
echo "install: activate the environment for the elmo command: . $VENV/bin/activate"

# Sourced by the bench/gpu_*.sh scripts on the H200: install the wheels carried in .whl/ (the
# machine lacks pydantic and torch-optimi), put them and the repo on PYTHONPATH, and unpack the
# carried .data/debian-deps.tgz (see docs/benchmarks.md for how both are made) into /tmp/data.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/data && tar -C /tmp/data -xzf .data/debian-deps.tgz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

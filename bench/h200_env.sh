# Sourced by the bench/gpu_*.sh scripts on the H200: install the wheels carried in .whl/ (the
# machine lacks pydantic and torch-optimi), put them and the repo on PYTHONPATH, and unpack the
# carried .data/debian-deps.tgz (see docs/benchmarks.md for how both are made) into /tmp/data.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
# The machine's Python packages come without bytecode (no __pycache__, not writable), so every
# process compiles transformers and torch._dynamo from source (about 8 s of the 670K setup under
# cProfile, which a pip-installed environment never pays; the next job's featurizing time did not
# show the saving). Cache the bytecode once.
export PYTHONPYCACHEPREFIX=/tmp/pycache
python3 -c "import transformers.models.bert.modeling_bert, sklearn, scipy.sparse" 2>/dev/null
if [ -f .data/debian-deps.tgz ]; then mkdir -p /tmp/data && tar -C /tmp/data -xzf .data/debian-deps.tgz; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

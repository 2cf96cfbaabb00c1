#!/usr/bin/env bash
# One device call: the head's GPU tests, then the benchmarks (logs and JSON under $OUT).
# Usage on the H200: OUT=/some/dir bash bench/h200_run.sh [stages...]
# stages: tests head api topk sweep scale e2e (default: all, in that order)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/elmo-bench}
mkdir -p "$OUT"
stages=${*:-tests head api topk sweep scale e2e}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee -a "$OUT/run.log"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
  | tee -a "$OUT/run.log"
for stage in $stages; do
  case $stage in
    tests) timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider \
             tests/core/head/test_gpu_triton.py tests/core/head/test_gpu_backend.py 2>&1 \
             | tee "$OUT/tests.log" | tail -40 ;;
    head) timeout 200 python3 bench/gpu_head.py --cases head --phases --json "$OUT/head.json" \
            2>&1 | tee -a "$OUT/run.log" ;;
    topk) timeout 60 python3 bench/gpu_head.py --cases topk --json "$OUT/topk.json" 2>&1 \
            | tee -a "$OUT/run.log" ;;
    sweep) timeout 150 python3 bench/gpu_head.py --cases none --sweep --json "$OUT/sweep.json" \
             2>&1 | tee -a "$OUT/run.log" ;;
    api) timeout 120 python3 bench/gpu_head.py --cases api --json "$OUT/api.json" 2>&1 \
           | tee -a "$OUT/run.log" ;;
    scale|e2e) timeout 150 python3 bench/gpu_head.py --cases "$stage" --json "$OUT/$stage.json" \
                 2>&1 | tee -a "$OUT/run.log" ;;
  esac
done

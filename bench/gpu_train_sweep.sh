#!/usr/bin/env bash
# One device call: install the carried wheels, unpack the carried dataset, run a train sweep.
# Usage on the H200: OUT=/some/dir bash bench/gpu_train_sweep.sh VARIANTS.json [PRECISION] [BASE_JSON]
source bench/h200_env.sh
base=${3:-'{"data": {"validation_fraction": 0.1}, "eval": {"split": "validation"}}'}
python3 bench/train_sweep.py --data /tmp/data/debian-deps --out /tmp/runs --device cuda \
  --variants "$1" --precision "${2:-fp8}" --base "$base" --timeout 520 --json "$OUT/sweep.json"
cp /tmp/runs/*.log "$OUT/" 2>/dev/null

#!/usr/bin/env bash
# One device call: every variant of VARIANTS.json (partial TrainConfigs) on full debian-deps, fp8,
# twice side by side: on the validation slice (last 10% of train: the choice) and on the test split
# (the number reported for the chosen one). Logs are written straight into $OUT.
# SPLITS=val runs the validation slice only (a first look at new variants).
# Usage on the H200: OUT=/some/dir [SPLITS=val] bash bench/gpu_variants_run.sh VARIANTS.json
source bench/h200_env.sh
mkdir -p /tmp/cfg
python3 - "$1" <<'PY'
import json, os, sys
sys.path.insert(0, "bench")
from train_sweep import deep_merge
val = {"data": {"validation_fraction": 0.1}, "eval": {"split": "validation"}}
for name, partial in json.load(open(sys.argv[1])).items():
    open(f"/tmp/cfg/val-{name}.json", "w").write(json.dumps(deep_merge(val, partial)))
    if os.environ.get("SPLITS") != "val":
        open(f"/tmp/cfg/test-{name}.json", "w").write(json.dumps(partial))
PY
for cfg in /tmp/cfg/*.json; do
  name=$(basename "$cfg" .json)
  python3 -m elmo_core.cli.main train --data /tmp/data/debian-deps --device cuda --precision fp8 \
    --config "$cfg" --out "/tmp/runs/$name" > "$OUT/$name.log" 2>&1 &
done
wait
grep -a -h "^model:" "$OUT"/*.log
for f in "$OUT"/*.log; do echo "$(basename $f): $(grep -a '^epoch [0-9]*:' $f | tail -1 | cut -c1-24)"; done

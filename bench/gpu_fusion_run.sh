#!/usr/bin/env bash
# One device call: full debian-deps with the default config (fusion on):
#   val-fp8   on the validation slice (last 10% of train), then bench/fusion_grid.py on its model;
#   test-fp8, test-fp32 on the test split.
#   then `elmo eval` of test-fp8 and bench/predict_latency.py on it.
# ENCODER picks the encoder (default tfidf; the carried MiniLM is hf:.models/minilm), VAL=0 skips
# the validation-slice run (and the grid on it), BF16=1 adds a test-bf16 run.
# Usage on the H200: OUT=/some/dir [GRID=0] [VAL=0] [BF16=1] [ENCODER=...] bash bench/gpu_fusion_run.sh
source bench/h200_env.sh
D=/tmp/data/debian-deps
echo '{"data": {"validation_fraction": 0.1}, "eval": {"split": "validation"}}' > /tmp/val.json
train() {  # name precision [config]
  local cfg=${3:+--config $3}
  /usr/bin/time -v python3 -m elmo_core.cli.main train --data $D --device cuda --precision $2 \
    --encoder "${ENCODER:-tfidf}" $cfg --out /tmp/runs/$1 > "$OUT/$1.log" 2>&1
  cp /tmp/runs/$1/metrics.json "$OUT/$1-metrics.json"
  cp /tmp/runs/$1/telemetry.json "$OUT/$1-telemetry.json"
}
train test-fp8 fp8 &
train test-fp32 fp32 &
[ "${BF16:-0}" = 1 ] && train test-bf16 bf16 &
[ "${VAL:-1}" = 1 ] && train val-fp8 fp8 /tmp/val.json
if [ "${VAL:-1}" = 1 ] && [ "${GRID:-1}" = 1 ]; then
  timeout 200 python3 bench/fusion_grid.py --model /tmp/runs/val-fp8/model --data $D \
    --json "$OUT/grid.json" > "$OUT/grid.log" 2>&1
fi
wait
du -sh /tmp/runs/test-fp8/model/* > "$OUT/artifact-sizes.txt"
python3 -m elmo_core.cli.main eval --model /tmp/runs/test-fp8/model --data $D --json \
  > "$OUT/eval-test-fp8.json" 2>&1
python3 bench/predict_latency.py --model /tmp/runs/test-fp8/model --data $D --device cuda \
  > "$OUT/predict-latency.txt" 2>&1
grep -a -h "^model:\|Elapsed\|Maximum resident" "$OUT"/*.log
cat "$OUT/predict-latency.txt"
[ -f "$OUT/grid.log" ] && sort -t'P' -k2 "$OUT/grid.log" | tail -8

#!/usr/bin/env bash
# One device call: full debian-deps, fp8 and fp32 side by side on the test split, same encoder and
# seed (the "fp32 within 0.5 P@1 of fp8" check at another seed). Six files come back in $OUT.
# Usage on the H200: OUT=/some/dir SEED=1 [ENCODER=hf:.models/minilm] bash bench/gpu_precision_pair.sh
source bench/h200_env.sh
for precision in fp8 fp32; do
  name=seed${SEED:-0}-$precision
  ( /usr/bin/time -v python3 -m elmo_core.cli.main train --data /tmp/data/debian-deps \
      --device cuda --precision $precision --encoder "${ENCODER:-tfidf}" --seed "${SEED:-0}" \
      --out /tmp/runs/$name > "$OUT/$name.log" 2>&1
    cp /tmp/runs/$name/metrics.json "$OUT/$name-metrics.json"
    cp /tmp/runs/$name/telemetry.json "$OUT/$name-telemetry.json" ) &
done
wait
grep -a -h "^epoch 10:\|^model:\|Elapsed" "$OUT"/*.log

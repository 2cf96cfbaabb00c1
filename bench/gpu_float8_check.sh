#!/usr/bin/env bash
# One device call: does `encoder.float8` (torchao float8 training of the transformer's linear
# layers) train? debian-deps-mini, MiniLM, fp8 head, validation slice, float8 off and on side by
# side. Needs a torchao wheel in the carried .whl/.
# Usage on the H200: OUT=/some/dir [EPOCHS=5] bash bench/gpu_float8_check.sh
source bench/h200_env.sh
python3 -c "import torch, torchao; print('torch', torch.__version__, 'torchao', torchao.__version__)"
for f8 in false true; do
  echo "{\"encoder\": {\"float8\": $f8}, \"epochs\": ${EPOCHS:-5},
    \"data\": {\"validation_fraction\": 0.1}, \"eval\": {\"split\": \"validation\"}}" > /tmp/f8-$f8.json
  python3 -m elmo_core.cli.main train --data examples/debian-deps-mini --device cuda \
    --precision fp8 --encoder hf:.models/minilm --config /tmp/f8-$f8.json \
    --out /tmp/runs/float8-$f8 > "$OUT/float8-$f8.log" 2>&1 &
done
wait
for f8 in false true; do
  cp /tmp/runs/float8-$f8/telemetry.json "$OUT/float8-$f8-telemetry.json"
  echo "float8=$f8"; grep -a "float8\|^epoch\|^model:\|Error" "$OUT/float8-$f8.log"
done

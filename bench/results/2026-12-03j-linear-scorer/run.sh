#!/usr/bin/env bash
# The linear prior's measurements on this session's VM (2 cores, AVX2 only), in this order, at
# the commit that landed (the first pass of this script, before `linear_min_points` and the
# fitted-weights rule, wrote s1, s2, peers and mini now in first-pass/).
# DATA: the debtags proxy built by ../2026-12-03i-debtags-proxy/build_debtags.py.
set -euo pipefail
DATA=${DATA:-/tmp/debtags/data}
W=${W:-/tmp/lin}
T='%e s wall %U user %S sys %M KB'
for seed in 0 1 2; do
  /usr/bin/time -f "$T" elmo train --data "$DATA" --encoder tfidf --seed "$seed" --out "$W/s$seed" > "$W/s$seed.log" 2>&1
done
python bench/peers.py "$DATA" --methods bonsai,plt,elmo-cpu --workdir "$W/peers" --json "$W/peers.jsonl" > "$W/peers.txt" 2>&1
/usr/bin/time -f "$T" elmo train --data ../shared/datasets/debian-deps-mini --encoder tfidf --out "$W/mini" > "$W/mini.log" 2>&1

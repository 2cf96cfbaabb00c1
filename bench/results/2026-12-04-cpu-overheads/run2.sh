#!/usr/bin/env bash
# After run.sh: the same code with the CPU limited to AVX2 (the cpu-fused head, oneDNN/ATen/MKL
# on AVX2 code paths, numba for Haswell) between two Bonsai runs, then debian-deps and
# debian-deps-mini with the defaults (native), one job at a time.
set -euo pipefail
W=${W:-/tmp/ovh}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
bonsai() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "$W/$1.json" > "$W/$1.txt" 2>&1; }
bonsai bonsai-4
(
  export ELMO_HEAD_BACKEND=cpu-fused ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
    MKL_ENABLE_INSTRUCTIONS=AVX2 NUMBA_CPU_NAME=haswell
  /usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf \
    --out "$W/wn-s0-avx2" > "$W/wn-s0-avx2.log" 2>&1
)
bonsai bonsai-5
/usr/bin/time -f "$T" elmo train --data ../shared/datasets/debian-deps --encoder tfidf --out "$W/deb" > "$W/deb.log" 2>&1
/usr/bin/time -f "$T" elmo train --data examples/debian-deps-mini --encoder tfidf --out "$W/mini" > "$W/mini.log" 2>&1

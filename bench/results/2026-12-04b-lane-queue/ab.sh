#!/usr/bin/env bash
# The queued lanes (this commit) against the per-step barrier (OLD: a checkout of 8e443ee, e.g.
# `git worktree add /tmp/old 8e443ee`) on wordnet-taxonomy, AVX2 code paths, alternated twice;
# first a one-epoch warm-up of the old tree (numba compiles its kernels for this CPU once).
set -euo pipefail
W=${W:-/tmp/lanes}
OLD=${OLD:?a checkout of 8e443ee}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
export ELMO_HEAD_BACKEND=cpu-fused ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
  MKL_ENABLE_INSTRUCTIONS=AVX2 NUMBA_CPU_NAME=haswell
PYTHONPATH=$OLD elmo train --data examples/debian-deps-mini --encoder tfidf --epochs 1 \
  --out "$W/warm-old" > /dev/null 2>&1
for i in 1 2; do
  for v in new old; do
    tree=""; [ "$v" = old ] && tree=$OLD
    PYTHONPATH=$tree /usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy \
      --encoder tfidf --out "$W/wn-avx2-$v-$i" > "$W/wn-avx2-$v-$i.log" 2>&1
  done
done

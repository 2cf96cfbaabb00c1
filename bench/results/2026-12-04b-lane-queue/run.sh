#!/usr/bin/env bash
# This commit against Omikuji-Bonsai, one job at a time, interleaved: Bonsai, elmo
# wordnet-taxonomy on AVX2 code paths, Bonsai, elmo with the CPU's own (AVX-512 BF16), ... ;
# then debian-deps and debian-deps-mini with defaults.
set -euo pipefail
W=${W:-/tmp/lanes}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
AVX2=(env ELMO_HEAD_BACKEND=cpu-fused ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
  MKL_ENABLE_INSTRUCTIONS=AVX2 NUMBA_CPU_NAME=haswell)
bonsai() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "$W/$1.json" > "$W/$1.txt" 2>&1; }
elmo_run() { local name=$1 data=$2; shift 2; /usr/bin/time -f "$T" "$@" elmo train --data "$data" --encoder tfidf --out "$W/$name" > "$W/$name.log" 2>&1; }
bonsai bonsai-1
elmo_run wn-avx2-1 examples/wordnet-taxonomy "${AVX2[@]}"
bonsai bonsai-2
elmo_run wn-1 examples/wordnet-taxonomy
bonsai bonsai-3
elmo_run wn-avx2-2 examples/wordnet-taxonomy "${AVX2[@]}"
bonsai bonsai-4
elmo_run wn-2 examples/wordnet-taxonomy
bonsai bonsai-5
elmo_run deb ../shared/datasets/debian-deps
elmo_run mini examples/debian-deps-mini

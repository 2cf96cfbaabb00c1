#!/usr/bin/env bash
# wordnet-taxonomy against Omikuji-Bonsai, one job at a time, interleaved (this session's VM):
# Bonsai, elmo (defaults), elmo with a checkpoint every epoch (the previous behaviour), Bonsai,
# elmo seed 1, Bonsai; then the same code with the CPU limited to AVX2 (AVX2=1 runs).
set -euo pipefail
W=${W:-/tmp/ovh}
D=$(dirname "$0")
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
bonsai() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "$W/$1.json" > "$W/$1.txt" 2>&1; }
elmo() { local name=$1; shift; /usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --out "$W/$name" "$@" > "$W/$name.log" 2>&1; }
bonsai bonsai-1
elmo wn-s0
elmo wn-s0-every-epoch --config "$D/every-epoch-config.json"
bonsai bonsai-2
elmo wn-s1 --seed 1
bonsai bonsai-3

#!/usr/bin/env bash
# The time rows on this session's AVX2-only VM at 9beeeb0 (the linear prior off on both
# datasets by its cost bound), one at a time: Bonsai, wordnet-taxonomy seed 0, Bonsai, debian-deps.
set -euo pipefail
W=${W:-/tmp/lin3}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "$W/bonsai-1.json" > "$W/bonsai-1.txt" 2>&1
/usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --out "$W/wn-s0" > "$W/wn-s0.log" 2>&1
python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "$W/bonsai-2.json" > "$W/bonsai-2.txt" 2>&1
/usr/bin/time -f "$T" elmo train --data ../shared/datasets/debian-deps --encoder tfidf --out "$W/deb" > "$W/deb.log" 2>&1

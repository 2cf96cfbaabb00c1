#!/usr/bin/env bash
# This session's VM (AMD EPYC family 25 model 1, Zen 3, 2 cores, AVX2 without AVX-512):
# debian-deps-mini once (it also fills numba's cache), then wordnet-taxonomy against
# Omikuji-Bonsai interleaved (Bonsai, elmo, Bonsai, elmo, Bonsai), then debian-deps; one job at
# a time, defaults only.
set -euo pipefail
W=${W:-/tmp/zen3}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
bonsai() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json "$W/$1.json" > "$W/$1.txt" 2>&1; }
elmo() { local name=$1 data=$2; shift 2; /usr/bin/time -f "$T" elmo train --data "$data" --encoder tfidf --out "$W/$name" "$@" > "$W/$name.log" 2>&1; }
elmo mini examples/debian-deps-mini
bonsai bonsai-1
elmo wn-1 examples/wordnet-taxonomy
bonsai bonsai-2
elmo wn-2 examples/wordnet-taxonomy
bonsai bonsai-3
elmo deb ../shared/datasets/debian-deps

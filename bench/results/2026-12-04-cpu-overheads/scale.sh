#!/usr/bin/env bash
# A generated 100K-point, 50K-label dataset, 2 epochs, tfidf defaults: the previous code (dc9c51f
# in a worktree at $OLD, its numba cache filled by its first run) against this pass's, one at a
# time: old, new, old.
set -euo pipefail
W=${W:-/tmp/scale}
OLD=${OLD:-/tmp/s36/old}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
elmo data synth "$W/syn100k" --shape custom --points 100000 --test-points 10000 --labels 50000 \
  --labels-per-point 5 --words-per-text 30 --label-words 6 --seed 0 --force
old() { (cd "$OLD" && /usr/bin/time -f "$T" python -m elmo_core.cli.main train --data "$W/syn100k" --encoder tfidf --epochs 2 --out "$W/$1") > "$W/$1.log" 2>&1; }
new() { /usr/bin/time -f "$T" elmo train --data "$W/syn100k" --encoder tfidf --epochs 2 --out "$W/$1" > "$W/$1.log" 2>&1; }
old syn-old-1
new syn-new
old syn-old-2

#!/usr/bin/env bash
# A generated 100K-point, 50K-label dataset, 2 epochs, tfidf defaults: the per-step barrier
# (8e443ee in a worktree at $OLD, its numba cache filled by a first run) against the queued lanes,
# one at a time: old (warm-up), then new and old alternated three times.
set -euo pipefail
W=${W:-/tmp/scale}
OLD=${OLD:?a checkout of 8e443ee}
mkdir -p "$W"
T='%e s wall %U user %S sys %M KB'
elmo data synth "$W/syn100k" --shape custom --points 100000 --test-points 10000 --labels 50000 \
  --labels-per-point 5 --words-per-text 30 --label-words 6 --seed 0 --force
old() { (cd "$OLD" && /usr/bin/time -f "$T" python -m elmo_core.cli.main train --data "$W/syn100k" --encoder tfidf --epochs 2 --out "$W/$1") > "$W/$1.log" 2>&1; }
new() { /usr/bin/time -f "$T" elmo train --data "$W/syn100k" --encoder tfidf --epochs 2 --out "$W/$1" > "$W/$1.log" 2>&1; }
old syn-old-warmup
new syn-new-1
old syn-old-1
new syn-new-2
old syn-old-2
new syn-new-3
old syn-old-3

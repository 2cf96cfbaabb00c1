#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
run() { name=$1; data=$2; shift 2; /usr/bin/time -f "$T" elmo train --data $data --encoder tfidf --out /tmp/m/$name "$@" > /tmp/m/$name.log 2>&1; echo $name $(date +%T) $(tail -1 /tmp/m/$name.log) >> /tmp/m/ab.times; }
bon() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json /tmp/m/$1.json > /tmp/m/$1.log 2>&1; echo $1 $(date +%T) >> /tmp/m/ab.times; }
echo start $(date +%T) >> /tmp/m/ab.times
run mini-warm examples/debian-deps-mini
run mini examples/debian-deps-mini
bon bonsai-1
run wn-s0 examples/wordnet-taxonomy
bon bonsai-2
run wn-s1 examples/wordnet-taxonomy --seed 1
bon bonsai-3
run wn-s2 examples/wordnet-taxonomy --seed 2
bon bonsai-4
run wn-s3 examples/wordnet-taxonomy --seed 3
bon bonsai-5
run wn-s4 examples/wordnet-taxonomy --seed 4
run deb ../shared/datasets/debian-deps
run deb-fp32 ../shared/datasets/debian-deps --precision fp32
echo end $(date +%T) >> /tmp/m/ab.times

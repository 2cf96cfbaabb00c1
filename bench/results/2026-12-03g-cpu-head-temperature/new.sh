#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
run_new() { /usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --out /tmp/m/$1 "${@:2}" > /tmp/m/$1.log 2>&1; }
bon() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json /tmp/m/$1.json > /tmp/m/$1.log 2>&1; }
echo start $(date +%T) >> /tmp/m/ab.times
run_new temp-1; echo temp-1 $(date +%T) >> /tmp/m/ab.times
bon bonsai-3; echo bonsai-3 $(date +%T) >> /tmp/m/ab.times
run_new temp-s1 --seed 1; echo temp-s1 $(date +%T) >> /tmp/m/ab.times

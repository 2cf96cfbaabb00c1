#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
run_new() { /usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --out /tmp/m/$1 "${@:2}" > /tmp/m/$1.log 2>&1; }
bon() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json /tmp/m/$1.json > /tmp/m/$1.log 2>&1; }
run_new temp-s2 --seed 2; echo temp-s2 $(date +%T) >> /tmp/m/ab.times
bon bonsai-4; echo bonsai-4 $(date +%T) >> /tmp/m/ab.times
run_new temp-s3 --seed 3; echo temp-s3 $(date +%T) >> /tmp/m/ab.times
run_new temp-s4 --seed 4; echo temp-s4 $(date +%T) >> /tmp/m/ab.times
bon bonsai-5; echo bonsai-5 $(date +%T) >> /tmp/m/ab.times

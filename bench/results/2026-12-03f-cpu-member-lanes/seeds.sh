#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
bon() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json /tmp/m/$1.json > /tmp/m/$1.log 2>&1; }
bon bonsai-6; echo bonsai-6 $(date +%T) >> /tmp/m/ab.times
for s in 3 4; do
/usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --seed $s --out /tmp/m/wn-seed$s > /tmp/m/wn-seed$s.log 2>&1; echo wn-seed$s $(date +%T) >> /tmp/m/ab.times
done
bon bonsai-7; echo bonsai-7 $(date +%T) >> /tmp/m/ab.times

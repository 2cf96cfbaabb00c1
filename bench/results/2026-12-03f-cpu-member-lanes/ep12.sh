#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
for s in 0 1; do
/usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --epochs 12 --seed $s --out /tmp/m/ep12-seed$s > /tmp/m/ep12-seed$s.log 2>&1; echo ep12-seed$s $(date +%T) >> /tmp/m/ab.times
done

#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
for i in 1 2 3; do
for mode in serial auto; do
/usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --config /tmp/m/cfg-$mode.json --out /tmp/m/ep3-$mode-$i > /tmp/m/ep3-$mode-$i.log 2>&1
echo ep3-$mode-$i $(date +%T) >> /tmp/m/ab.times
done; done

#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
echo deb-start $(date +%T) >> /tmp/m/ab.times
/usr/bin/time -f "$T" elmo train --data ../shared/datasets/debian-deps --encoder tfidf --out /tmp/m/deb-new > /tmp/m/deb-new.log 2>&1; echo deb-new $(date +%T) >> /tmp/m/ab.times
/usr/bin/time -f "$T" elmo train --data examples/debian-deps-mini --encoder tfidf --out /tmp/m/mini-new > /tmp/m/mini-new.log 2>&1; echo mini-new $(date +%T) >> /tmp/m/ab.times

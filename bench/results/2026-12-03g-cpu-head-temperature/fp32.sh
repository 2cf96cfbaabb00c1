#!/bin/bash
cd /work/main
. .venv/bin/activate
/usr/bin/time -f '%e s wall %U user %S sys %M KB' elmo train --data ../shared/datasets/debian-deps --encoder tfidf --precision fp32 --out /tmp/m/deb-fp32 > /tmp/m/deb-fp32.log 2>&1; echo deb-fp32 $(date +%T) >> /tmp/m/ab.times

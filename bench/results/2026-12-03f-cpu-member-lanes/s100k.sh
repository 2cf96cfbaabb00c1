#!/bin/bash
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
[ -d /tmp/s100k ] || elmo data synth /tmp/s100k --shape amazon-670k --scale 0.2 --seed 0 > /tmp/m/s100k-synth.log 2>&1
elmo train --data /tmp/s100k --encoder tfidf --epochs 2 --out /tmp/m/x2 --print-config 2>/dev/null > /tmp/m/cfg-s100k-auto.json
sed 's/"member_lanes": null/"member_lanes": 1/' /tmp/m/cfg-s100k-auto.json > /tmp/m/cfg-s100k-serial.json
echo s100k-start $(date +%T) >> /tmp/m/ab.times
for mode in auto serial; do
/usr/bin/time -f "$T" elmo train --data /tmp/s100k --encoder tfidf --config /tmp/m/cfg-s100k-$mode.json --out /tmp/m/s100k-$mode > /tmp/m/s100k-$mode.log 2>&1
echo s100k-$mode $(date +%T) >> /tmp/m/ab.times
done

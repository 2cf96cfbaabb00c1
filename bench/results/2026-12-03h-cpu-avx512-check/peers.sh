#!/bin/bash
# The peer bench on the three datasets, every CPU method, one invocation each (run from the
# repository root in the dev venv); rows appended to peers-*.jsonl, printed tables in peers-*.txt.
D=bench/results/2026-12-03h-cpu-avx512-check
for data in examples/debian-deps-mini examples/wordnet-taxonomy ../shared/datasets/debian-deps; do
  name=$(basename $data)
  echo "$name start $(date +%T)" >> $D/peers-times.txt
  python bench/peers.py $data --methods bonsai,plt,elmo-cpu --workdir /tmp/peers-$name \
    --json $D/peers-$name.jsonl > $D/peers-$name.txt 2>&1
  echo "$name end $(date +%T) rc $?" >> $D/peers-times.txt
done

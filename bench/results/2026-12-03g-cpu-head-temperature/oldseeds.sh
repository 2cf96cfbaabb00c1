#!/bin/bash
# the old commit (d658edc, worktree /tmp/exp) on seeds 1-4, on this VM
T='%e s wall %U user %S sys %M KB'
for s in 1 2 3 4; do
  (cd /tmp/exp && PYTHONPATH=/tmp/exp /usr/bin/time -f "$T" /work/main/.venv/bin/python -m elmo_core.cli.main train --data /work/main/examples/wordnet-taxonomy --encoder tfidf --seed $s --out /tmp/m/old-s$s > /tmp/m/old-s$s.log 2>&1)
  echo old-s$s $(date +%T) >> /tmp/m/ab.times
done

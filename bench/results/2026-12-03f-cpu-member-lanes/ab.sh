#!/bin/bash
# interleaved A/B on wordnet-taxonomy: bonsai, old, new, bonsai, new, old, bonsai
# old = 317b723 (worktree /tmp/exp), new = the working tree (members on CPU lanes)
cd /work/main
. .venv/bin/activate
T='%e s wall %U user %S sys %M KB'
run_old() { (cd /tmp/exp && PYTHONPATH=/tmp/exp /usr/bin/time -f "$T" python -m elmo_core.cli.main train --data /work/main/examples/wordnet-taxonomy --encoder tfidf --out /tmp/m/$1 > /tmp/m/$1.log 2>&1); }
run_new() { /usr/bin/time -f "$T" elmo train --data examples/wordnet-taxonomy --encoder tfidf --out /tmp/m/$1 > /tmp/m/$1.log 2>&1; }
bon() { python bench/peers.py examples/wordnet-taxonomy --methods bonsai --json /tmp/m/$1.json > /tmp/m/$1.log 2>&1; }
echo start $(date +%T) >> /tmp/m/ab.times
bon bonsai-3; echo bonsai-3 $(date +%T) >> /tmp/m/ab.times
run_old old-1; echo old-1 $(date +%T) >> /tmp/m/ab.times
run_new new-1; echo new-1 $(date +%T) >> /tmp/m/ab.times
bon bonsai-4; echo bonsai-4 $(date +%T) >> /tmp/m/ab.times
run_new new-2; echo new-2 $(date +%T) >> /tmp/m/ab.times
run_old old-2; echo old-2 $(date +%T) >> /tmp/m/ab.times
bon bonsai-5; echo bonsai-5 $(date +%T) >> /tmp/m/ab.times

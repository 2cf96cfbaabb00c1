# On the H200 (run from the repository root with .whl and .data carried): debian-deps, tfidf, the
# GPU recipe at this pass's commit, seeds 0 and 1 side by side; metrics and logs into $OUT.
source bench/h200_env.sh
D=/tmp/data/debian-deps
run() { name=$1; shift; python3 -m elmo_core.cli.main train --data $D --device cuda --out /tmp/runs/$name "$@" > $OUT/$name.log 2>&1; cp /tmp/runs/$name/metrics.json $OUT/$name-metrics.json; }
run tfidf-s0 --encoder tfidf &
run tfidf-s1 --encoder tfidf --seed 1 &
wait
grep -a -h '^model:' $OUT/*.log

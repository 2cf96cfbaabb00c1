# On the H200 (run from the repository root with .whl and .data carried): debian-deps and
# debian-deps-mini, tfidf, seed 0, one after the other: the GPU recipe after this pass (its serial
# step loop was re-ordered around the CPU lanes' queue); metrics and logs into $OUT.
source bench/h200_env.sh
mkdir -p /tmp/data && tar -C /tmp/data -xzf .data/debian-deps.tgz
run() { name=$1; shift; /usr/bin/time -f "%e s wall" python3 -m elmo_core.cli.main train --device cuda --encoder tfidf --out /tmp/runs/$name "$@" > $OUT/$name.log 2>&1; cp /tmp/runs/$name/metrics.json $OUT/$name-metrics.json; }
run deb-s0 --data /tmp/data/debian-deps
run mini-s0 --data examples/debian-deps-mini
grep -a -h '^model:\|s wall' $OUT/*.log

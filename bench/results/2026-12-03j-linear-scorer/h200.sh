# On the H200 (run from the repository root with .whl and .data carried, .data/debtags.tgz being
# the debtags proxy's data folder): debian-deps (the linear prior off by its cost bound: the GPU
# recipe as before) and the debtags proxy (the linear prior fitted beside the first epoch), tfidf,
# seed 0, side by side; metrics and logs into $OUT.
source bench/h200_env.sh
python3 -c "import sklearn; print('scikit-learn', sklearn.__version__)"
mkdir -p /tmp/data && tar -C /tmp/data -xzf .data/debtags.tgz
run() { name=$1; shift; python3 -m elmo_core.cli.main train --device cuda --encoder tfidf --out /tmp/runs/$name "$@" > $OUT/$name.log 2>&1; cp /tmp/runs/$name/metrics.json $OUT/$name-metrics.json; }
run deb-s0 --data /tmp/data/debian-deps &
run debtags-s0 --data /tmp/data/data &
wait
grep -a -h '^model:\|linear prior' $OUT/*.log

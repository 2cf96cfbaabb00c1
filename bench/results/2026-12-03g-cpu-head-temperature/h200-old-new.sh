source bench/h200_env.sh
D=/tmp/data/debian-deps
R=$PWD
run() { name=$1; shift; python3 -m elmo_core.cli.main train --data $D --device cuda --out /tmp/runs/$name "$@" > $OUT/$name.log 2>&1; cp /tmp/runs/$name/metrics.json $OUT/$name-metrics.json; }
run new-tfidf --encoder tfidf &
(cd oldsrc && export PYTHONPATH=/tmp/site:$R/oldsrc && python3 -c "import elmo_core; print(elmo_core.__file__)" > $OUT/old-path.txt && run old-tfidf --encoder tfidf) &
wait
run new-tfidf-s1 --encoder tfidf --seed 1 &
(cd oldsrc && export PYTHONPATH=/tmp/site:$R/oldsrc && run old-tfidf-s1 --encoder tfidf --seed 1) &
wait
cat $OUT/old-path.txt
grep -a -h '^model:\|fitted on validation' $OUT/*.log | cut -c1-200 | tail -60

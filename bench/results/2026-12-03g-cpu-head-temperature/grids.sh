#!/bin/bash
# The temperature sweeps, the held-out check and the update product (after the training runs;
# RUNS: where their run directories are).
cd /work/main && . .venv/bin/activate
R=bench/results/2026-12-03g-cpu-head-temperature
RUNS=${RUNS:-/tmp/m}
TEMPS="0.5 0.75 1 1.5 2 3"
python bench/fusion_grid.py --model $RUNS/base-1/model --data examples/wordnet-taxonomy \
  --neighbours 50 --powers 3 --temperatures $TEMPS > $R/grid-base-1.txt 2>&1
python bench/fusion_grid.py --model $RUNS/base-1/model --data examples/wordnet-taxonomy \
  --neighbours 50 --powers 3 --temperatures $TEMPS --weights 0 0.0625 0.125 0.25 0.5 1 2 4 \
  > $R/grid-base-1-small-weights.txt 2>&1
python bench/fusion_grid.py --model $RUNS/e3-new3/model --data examples/wordnet-taxonomy \
  --neighbours 50 --powers 3 --temperatures $TEMPS > $R/grid-e3-new3.txt 2>&1
python bench/fusion_grid.py --model $RUNS/init1/model --data examples/wordnet-taxonomy \
  --neighbours 50 --powers 3 --temperatures $TEMPS > $R/grid-init1.txt 2>&1
python bench/fusion_grid.py --model $RUNS/deb/model --data ../shared/datasets/debian-deps \
  --neighbours 50 --powers 1 --temperatures 1 1.5 2 3 > $R/grid-deb.txt 2>&1
python $R/twofold.py $RUNS/temp-1/model examples/wordnet-taxonomy 1,1.5,2 > $R/twofold-temp-1.txt 2>&1
python $R/twofold.py $RUNS/deb/model ../shared/datasets/debian-deps 1,1.5,2 > $R/twofold-deb.txt 2>&1
for labels in 2400 3800; do
  python bench/cpu_fp32_matmul.py --update --labels $labels --dim 513 --batch 256 --threads 1 \
    --repeats 15 --json $R/update-product.jsonl
done

#!/usr/bin/env bash
# One device call of the scale benchmarks (issue 13): generate a dataset shape, measure the
# encoder-only ceiling, then time whole training jobs phase by phase. Rows go to $OUT/scale.json.
# Usage on the H200 (carry .whl .data .models, see bench/prepare_carry.sh):
#   OUT=/some/dir bash bench/h200_scale.sh STAGE...
# stages: gpu-tests gen-670k gen-3m@SCALE ceiling job-670k-minilm job-670k-tfidf
#         job-3m-minilm@SCALE debian-minilm debian-minilm@SEED priors-670k artifact-3m
#         profile-670k-minilm (the 670K job with steps 1000-1040 under torch.profiler)
# JOB_TIMEOUT (seconds, default 560) bounds a job-3m-minilm stage.
source bench/h200_env.sh
export ELMO_MINILM=hf:$PWD/.models/minilm
nproc; free -g | head -2
for stage in "$@"; do
  echo "=== $stage $(date +%T)"
  case $stage in
    gpu-tests) timeout 180 python3 -m pytest -q -p no:cacheprovider \
                 tests/core/training/test_graphed_encoder.py tests/core/fusion/test_similarity.py ;;
    gen-670k) /usr/bin/time -f "%e s, %M KB" python3 -m elmo_core.cli.main data synth \
                /tmp/a670k --shape amazon-670k --seed 0 --force ;;
    gen-3m@*) /usr/bin/time -f "%e s, %M KB" python3 -m elmo_core.cli.main data synth \
                /tmp/a3m --shape amazon-3m --scale "${stage#gen-3m@}" --seed 0 --force ;;
    ceiling) timeout 240 python3 bench/encoder_ceiling.py --data /tmp/a670k \
               --encoder "$ELMO_MINILM" --batch 128 --steps 300 --modes eager,graphs \
               --json "$OUT/scale.json" ;;
    job-670k-minilm) timeout 400 python3 bench/scale_job.py --data /tmp/a670k \
                       --shape amazon-670k --encoder "$ELMO_MINILM" --json "$OUT/scale.json" ;;
    job-670k-tfidf) timeout 300 python3 bench/scale_job.py --data /tmp/a670k \
                      --shape amazon-670k --encoder tfidf --json "$OUT/scale.json" ;;
    profile-670k-minilm) timeout 400 python3 bench/scale_job.py --data /tmp/a670k \
                           --shape amazon-670k --encoder "$ELMO_MINILM" --json "$OUT/scale.json" \
                           --profile-steps 1000:1040 --profile-out "$OUT/profile-670k-minilm" ;;
    job-3m-minilm@*) timeout "${JOB_TIMEOUT:-560}" python3 bench/scale_job.py --data /tmp/a3m \
                       --shape "amazon-3m@${stage#job-3m-minilm@}" --encoder "$ELMO_MINILM" \
                       --json "$OUT/scale.json" ;;
    debian-minilm) timeout 300 python3 bench/scale_job.py --data /tmp/data/debian-deps \
                     --shape debian-deps --encoder "$ELMO_MINILM" --epochs 10 \
                     --json "$OUT/scale.json" --out /tmp/debian-minilm \
                   && cp /tmp/debian-minilm/telemetry.json "$OUT/debian-minilm-telemetry.json" ;;
    debian-minilm@*) timeout 300 python3 bench/scale_job.py --data /tmp/data/debian-deps \
                       --shape "debian-deps seed ${stage#debian-minilm@}" --encoder "$ELMO_MINILM" \
                       --epochs 10 --set "seed=${stage#debian-minilm@}" \
                       --json "$OUT/scale.json" --out "/tmp/debian-minilm-${stage#debian-minilm@}" ;;
    artifact-3m) python3 -m elmo_core.cli.main data synth /tmp/a3m-labels --shape amazon-3m \
                   --points 50000 --test-points 1000 --seed 0 --force \
                 && timeout 400 python3 bench/artifact_scale.py --data /tmp/a3m-labels \
                   --out /tmp/a3m-model --device cuda --repeats 10 | tee -a "$OUT/artifact.json" ;;
    priors-670k) timeout 200 python3 bench/priors.py --device cuda --json "$OUT/scale.json" ;;
  esac
done

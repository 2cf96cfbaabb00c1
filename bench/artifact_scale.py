"""Artifact and CPU serving cost of a model at a large label count (issue 13, item 5).

Builds an untrained model of the default `tfidf` config for a dataset directory (e.g. `elmo data
synth OUT --shape amazon-3m --points 50000 --test-points 1000`: the full 2,812,281 labels and
their texts with few points), with both text priors, then times what a user waits for: writing
the artifact, reading it back, `Predictor.load` in the API process, and `predict` latency.
Untrained weights score as fast as trained ones; only the timings and sizes mean anything.

    python bench/artifact_scale.py --data /tmp/a3m-labels --out /tmp/a3m-model [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import torch

from elmo_core.data import load_dataset
from elmo_core.encoders import build_encoder
from elmo_core.fusion import FusedScorer
from elmo_core.head import XMCHead
from elmo_core.inference import Predictor
from elmo_core.model.artifact import load_model, save_model
from elmo_core.training import parse_config

T = TypeVar("T")


def timed(
    label: str, times: dict[str, float], fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Run `fn`, keep its seconds under `label`, print them."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    times[label] = round(time.perf_counter() - started, 2)
    print(f"{label}: {times[label]} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    config = parse_config({"precision": "fp8", "device": args.device})
    times: dict[str, float] = {}
    dataset = timed("load dataset", times, load_dataset, args.data)
    train = dataset.train
    encoder = timed("fit encoder", times, build_encoder, config.encoder, train.texts, None)
    head = XMCHead(
        dataset.num_labels, encoder.dim, precision="fp8", init_std=0.02, seed=0, device="cpu"
    )
    fusion_cfg = config.fusion
    fusion = timed(
        "fit priors",
        times,
        FusedScorer.fit,
        train.texts,
        train.labels,
        dataset.label_texts,
        label_text_weight=fusion_cfg.label_text_weight,
        neighbour_weight=fusion_cfg.neighbour_weight,
        neighbours=fusion_cfg.neighbours,
        candidates=fusion_cfg.candidates,
        char_ngrams=fusion_cfg.char_ngrams,
        min_df=fusion_cfg.min_df,
        word_featurizer=encoder.featurizer,
    )
    if args.out.exists():
        shutil.rmtree(args.out)
    timed(
        "save_model",
        times,
        save_model,
        args.out,
        config=config,
        encoder=encoder,
        head=head,
        label_texts=dataset.label_texts,
        fusion=fusion,
    )
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    timed("load_model", times, load_model, args.out, args.device)
    predictor = timed("Predictor.load", times, Predictor.load, str(args.out), args.device)
    texts = dataset.test.texts if dataset.test is not None else train.texts
    latencies: dict[str, float] = {}
    for batch in (1, 16):
        samples = []
        for i in range(args.repeats):
            started = time.perf_counter()
            predictor.predict(texts[i * batch : (i + 1) * batch], k=10)
            samples.append(time.perf_counter() - started)
        latencies[f"batch {batch} median ms"] = round(1000 * statistics.median(samples), 1)
    row = {
        "case": "artifact",
        "labels": dataset.num_labels,
        "train_points": train.num_points,
        "device": args.device,
        "artifact_gib": round(size / 2**30, 3),
        "times_s": times,
        "predict": latencies,
        "torch_threads": torch.get_num_threads(),
        "date": date.today().isoformat(),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

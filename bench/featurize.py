"""Fit + transform time of the word and character TF-IDF featurizers, one worker versus all cores.

    python bench/featurize.py [--texts 100000] [--seed 0] [--data DIR] [--workers N]
        [--featurizer word|char]   (default: both)

Without `--data` the texts are synthetic (seeded): about 30 words each, drawn Zipf-like from a
vocabulary of plain words and package-like compound names (`libfoo-3-0`, `bar++`, `baz.so`). With
`--data DIR` the first `--texts` lines of `DIR/trn_X.txt` are used. Prints one JSON line per case;
`cpu_s` (this process and its workers, user + system) tells contention apart from the code: on a
busy machine wall times grow, CPU seconds much less.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from elmo_core.data.textio import read_lines
from elmo_core.parallel import worker_count
from elmo_core.text_features import CharTfidf, TfidfFeaturizer

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))
SUFFIXES = ["", "", "", "-dev", "-3-0", "++", ".so", "_utils", "-doc", "2.7"]


def synthetic_texts(count: int, seed: int, vocabulary_size: int = 50_000) -> list[str]:
    """`count` texts of 20-40 words drawn with probability ~ 1/rank from a seeded vocabulary."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 11, size=vocabulary_size)
    suffixes = rng.choice(SUFFIXES, size=vocabulary_size)
    vocabulary = np.array(
        [
            "".join(rng.choice(LETTERS, size=n)) + suffix
            for n, suffix in zip(lengths, suffixes, strict=True)
        ],
        dtype=object,
    )
    weights = 1.0 / np.arange(1, vocabulary_size + 1)
    words_per_text = rng.integers(20, 41, size=count)
    words = vocabulary[
        rng.choice(vocabulary_size, size=int(words_per_text.sum()), p=weights / weights.sum())
    ]
    ends = np.cumsum(words_per_text)
    return [" ".join(words[end - n : end]) for n, end in zip(words_per_text, ends, strict=True)]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished child processes."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(featurizer: Any, texts: list[str], workers: int) -> dict[str, float]:
    """Seconds to fit `featurizer` on `texts` and to transform them with `workers` processes, and
    the CPU seconds both took."""
    cpu = cpu_seconds()
    started = time.perf_counter()
    featurizer.fit(texts, workers=workers)
    fitted = time.perf_counter()
    featurizer.transform(texts, workers=workers)
    done = time.perf_counter()
    return {
        "fit_s": round(fitted - started, 3),
        "transform_s": round(done - fitted, 3),
        "cpu_s": round(cpu_seconds() - cpu, 3),
    }


def main() -> None:
    """Time every (featurizer, workers) case and print it as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=None, help="the parallel case (all cores)")
    parser.add_argument("--featurizer", choices=["word", "char"], action="append")
    args = parser.parse_args()
    if args.data is not None:
        texts = read_lines(args.data / "trn_X.txt")[: args.texts]
    else:
        texts = synthetic_texts(args.texts, args.seed)
    featurizers: dict[str, Callable[[], Any]] = {"word": TfidfFeaturizer, "char": CharTfidf}
    for name in args.featurizer or list(featurizers):
        make = featurizers[name]
        for workers in sorted({1, worker_count(args.workers)}):
            times = timed(make(), texts, workers)
            total = times["fit_s"] + times["transform_s"]
            case = {"featurizer": name, "texts": len(texts), "workers": workers, **times}
            print(json.dumps({**case, "texts_per_s": round(len(texts) / total)}), flush=True)


if __name__ == "__main__":
    main()

"""Probe on the validation slice only: which features and C make the one-vs-rest linear scorer
best on a dataset (`python feature_probe.py DATA [FEATURES:C[:TOL] ...]`, from the repository
root; default: word, char and word+char at C 0.5, 1 and 2, tolerance 1e-4). The train split
minus elmo's validation slice (the defaults' `select_splits`) trains; the slice scores. The test
split is not read.
"""

import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

sys.path.insert(0, "bench")
from peers import elmo_propensities, score

from elmo_core.config import TfidfConfig, TrainConfig
from elmo_core.data import load_dataset
from elmo_core.data.splits import select_splits
from elmo_core.encoders import tfidf_featurizer
from elmo_core.text_features.char_tfidf import CharTfidf
from elmo_core.text_features.word_tfidf import l2_normalize_rows


def main(data: str, asked: list[str]) -> None:
    """Print validation P@1/P@5/PSP@5 of each variant."""
    dataset = load_dataset(data)
    splits = select_splits(TrainConfig(), dataset)
    train, validation = splits.train, splits.validation
    labels = sp.csr_matrix(train.labels, dtype=np.float32)
    labels.data[:] = 1
    seen = np.flatnonzero(np.asarray(labels.sum(axis=0)).ravel() > 0)
    propensities = elmo_propensities(dataset)
    word = tfidf_featurizer(TfidfConfig()).fit(train.texts)
    char = CharTfidf(ngram_range=(3, 5), min_df=2).fit(train.texts)
    word_rows = (word.transform(train.texts), word.transform(validation.texts))
    char_rows = (char.transform(train.texts), char.transform(validation.texts))
    both = tuple(
        l2_normalize_rows(sp.hstack([w, c]).tocsr())
        for w, c in zip(word_rows, char_rows, strict=True)
    )
    variants = {"word": word_rows, "char": char_rows, "word+char": both}
    runs = [(name, c, 1e-4) for name in variants for c in (0.5, 1.0, 2.0)]
    if asked:
        runs = [parse(item) for item in asked]
    for name, c, tol in runs:
        x_train, x_val = variants[name]
        started = time.perf_counter()
        model = OneVsRestClassifier(LinearSVC(C=c, tol=tol)).fit(x_train, labels[:, seen])
        fitted = time.perf_counter() - started
        margins = np.full((validation.num_points, labels.shape[1]), -10.0)
        margins[:, seen] = model.decision_function(x_val)
        values = score(np.argsort(-margins, axis=1)[:, :5], validation, propensities)
        shown = {k: round(values[k], 2) for k in ("P@1", "P@5", "PSP@5")}
        tolerance = "" if tol == 1e-4 else f" tol={tol:g}"
        print(f"{name} C={c}{tolerance}: {fitted:.1f} s fit, validation {shown}", flush=True)


def parse(item: str) -> tuple[str, float, float]:
    """`FEATURES:C[:TOL]` (liblinear's tolerance, scikit-learn's default 1e-4)."""
    parts = item.split(":")
    return parts[0], float(parts[1]), float(parts[2]) if len(parts) > 2 else 1e-4


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

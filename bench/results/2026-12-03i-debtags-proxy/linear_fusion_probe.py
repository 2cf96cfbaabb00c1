"""Probe, not a recipe: a one-vs-rest LinearSVC fitted on a saved run's train split (its
validation slice held out), fused with the run's head and priors; the weights are chosen on the
validation slice by P@1 and only then scored on test (`python linear_fusion_probe.py DATA
RUN/model`, from the repository root).

Fused score = h sigmoid(logit / T) + l sigmoid(2 margin) + a neighbour votes + b label-text
cosine, with h in {0, 1} and l, a, b from small grids; labels without a train point keep a
margin of -10.
"""

import itertools
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

sys.path.insert(0, "bench")
from peers import elmo_propensities, score

from elmo_core.config import TfidfConfig
from elmo_core.data import XMCSplit, load_dataset
from elmo_core.data.splits import select_splits
from elmo_core.encoders import tfidf_featurizer
from elmo_core.model import load_model
from elmo_core.model.scoring import predict_topk

GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
LINEAR = (0.0, 0.5, 1.0, 2.0, 4.0)
Weights = tuple[float, float, float, float]


def main(data: str, model_dir: str) -> None:
    """Print the weights chosen on validation and their test metrics, beside fixed ones."""
    dataset = load_dataset(data)
    model = load_model(model_dir, "cpu")
    assert model.fusion is not None
    splits = select_splits(model.config, dataset)
    train, validation, test = splits.train, splits.validation, splits.test
    assert validation is not None and test is not None
    featurizer = tfidf_featurizer(TfidfConfig()).fit(train.texts)
    labels = sp.csr_matrix(train.labels)
    labels.data[:] = 1
    seen = np.asarray(labels.sum(axis=0)).ravel() > 0
    started = time.perf_counter()
    linear = OneVsRestClassifier(LinearSVC(C=1.0)).fit(
        featurizer.transform(train.texts), labels[:, seen]
    )
    print(f"one-vs-rest LinearSVC: {time.perf_counter() - started:.1f} s")
    num_labels = model.head.num_labels

    def parts(split: XMCSplit) -> list[np.ndarray]:
        margins = np.full((split.num_points, num_labels), -10.0)
        margins[:, seen] = linear.decision_function(featurizer.transform(split.texts))
        prepared = model.encoder.featurize(split.texts, split.features)
        logits, ids = predict_topk(
            model.encoder, model.head, prepared, split.num_points, num_labels, 512,
            torch.device("cpu"),
        )  # fmt: skip
        head = np.empty_like(logits)
        np.put_along_axis(head, ids, logits, axis=1)
        priors = model.fusion.prior_scores(split.texts, num_labels)
        zeros = np.zeros((split.num_points, num_labels))
        return [
            1 / (1 + np.exp(-head / model.fusion.head_temperature)),
            1 / (1 + np.exp(-2 * margins)),
            zeros if priors.neighbours is None else priors.neighbours.toarray(),
            zeros if priors.label_text is None else priors.label_text.toarray(),
        ]

    propensities = elmo_propensities(dataset)

    def metrics(split: XMCSplit, scores: list[np.ndarray], weights: Weights) -> dict[str, float]:
        fused = sum(w * s for w, s in zip(weights, scores, strict=True))
        ranked = np.argsort(-fused, axis=1)[:, :5]
        values = score(ranked, split, propensities)
        return {key: round(values[key], 2) for key in ("P@1", "P@5", "PSP@5")}

    on_validation, on_test = parts(validation), parts(test)
    for heads in ((0.0,), (1.0,), (0.0, 1.0)):
        grid = [w for w in itertools.product(heads, LINEAR, GRID, GRID) if any(w)]
        chosen = max(grid, key=lambda w: metrics(validation, on_validation, w)["P@1"])
        print(
            f"head weight in {heads}: chosen on validation {chosen} "
            f"(validation {metrics(validation, on_validation, chosen)}), "
            f"test {metrics(test, on_test, chosen)}"
        )
    for fixed in ((0.0, 1.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)):
        print(f"fixed {fixed}: test {metrics(test, on_test, fixed)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

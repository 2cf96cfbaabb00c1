"""Directional probe, not a selection: a one-vs-rest linear SVM on the peers' TF-IDF features of
the debtags proxy, alone and summed with the head of a saved elmo model at three fixed weights
(`python linear_probe.py DATA RUN/model`; run from the repository root). Nothing here is chosen
on the test split: the weights are fixed beforehand and every one is printed.
"""

import sys
import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

sys.path.insert(0, "bench")
from peers import elmo_propensities, featurize, score

from elmo_core.data import load_dataset
from elmo_core.model import load_model
from elmo_core.model.scoring import predict_topk

SHOWN = ("P@1", "P@5", "PSP@5")


def shown(ids: np.ndarray, dataset, propensities: np.ndarray) -> dict[str, float]:
    """The shown metrics of a ranking of the test split."""
    metrics = score(ids, dataset.test, propensities)
    return {key: round(metrics[key], 2) for key in SHOWN}


def main(data: str, model_dir: str) -> None:
    """Print the linear model's, the head's and their sums' test metrics."""
    dataset = load_dataset(data)
    train_features, test_features = featurize(dataset)
    labels = sp.csr_matrix(dataset.train.labels)
    labels.data[:] = 1
    started = time.perf_counter()
    linear = OneVsRestClassifier(LinearSVC(C=1.0), n_jobs=1).fit(train_features, labels)
    print(f"one-vs-rest LinearSVC: trained in {time.perf_counter() - started:.1f} s")
    margins = linear.decision_function(test_features)
    propensities = elmo_propensities(dataset)
    print("linear alone", shown(np.argsort(-margins, axis=1)[:, :5], dataset, propensities))
    model = load_model(model_dir, "cpu")
    test = dataset.test
    prepared = model.encoder.featurize(test.texts, test.features)
    num_labels = model.head.num_labels
    logits, ids = predict_topk(
        model.encoder, model.head, prepared, test.num_points, num_labels, 512, torch.device("cpu")
    )
    head = np.empty_like(logits)
    np.put_along_axis(head, ids, logits, axis=1)
    print("head alone", shown(np.argsort(-head, axis=1)[:, :5], dataset, propensities))
    temperature = model.fusion.head_temperature if model.fusion is not None else 1.0
    for weight in (0.5, 1.0, 2.0):
        fused = 1 / (1 + np.exp(-head / temperature)) + weight / (1 + np.exp(-2 * margins))
        ranked = np.argsort(-fused, axis=1)[:, :5]
        print(f"head + {weight:g} x sigmoid(2 margin)", shown(ranked, dataset, propensities))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Dataset statistics: what `elmo data inspect` prints (and the service shows for a dataset)."""

from __future__ import annotations

from typing import Any

import numpy as np

from elmo_core.data.dataset import XMCDataset, XMCSplit

QUANTILES = {"min": 0, "10%": 10, "25%": 25, "50%": 50, "75%": 75, "90%": 90, "99%": 99, "max": 100}


def dataset_stats(ds: XMCDataset) -> dict[str, Any]:
    """Statistics of a dataset as a JSON-ready dict (counts are ints, percentages in 0-100).

    Label frequencies are numbers of train points per label; quantiles use numpy's linear
    interpolation, over all labels and over the labels with at least one train point.
    """
    num_labels = ds.num_labels
    train_counts = _label_counts(ds.train, num_labels)
    seen = train_counts > 0
    test_counts = _label_counts(ds.test, num_labels) if ds.test is not None else None
    labels: dict[str, Any] = {
        "total": num_labels,
        "seen_in_train": int(seen.sum()),
        "avg_train_points_per_label": _ratio(train_counts.sum(), num_labels),
        "avg_train_points_per_seen_label": _ratio(train_counts.sum(), seen.sum()),
        "with_at_most_5_train_points_pct": _pct((train_counts <= 5).sum(), num_labels),
        "train_frequency_quantiles": {
            "all_labels": _quantiles(train_counts),
            "seen_in_train": _quantiles(train_counts[seen]),
        },
    }
    if test_counts is not None:
        labels["only_in_test"] = int(((test_counts > 0) & ~seen).sum())
        labels["unused"] = int(((test_counts == 0) & ~seen).sum())
    else:
        labels["unused"] = int((~seen).sum())
    if ds.label_texts is not None:
        labels["avg_text_chars"] = _ratio(sum(map(len, ds.label_texts)), num_labels)
    stats: dict[str, Any] = {
        "name": ds.name,
        "format": ds.format,
        "num_labels": num_labels,
        "train": _split_stats(ds.train),
        "test": None,
        "labels": labels,
    }
    if ds.test is not None:
        test = _split_stats(ds.test)
        test_labels = ds.test.labels
        unseen_hits = ~seen[test_labels.indices]
        positives = int(test_labels.nnz)
        unseen = int(unseen_hits.sum())
        cumulative = np.concatenate([[0], np.cumsum(unseen_hits)])
        per_row_unseen = cumulative[test_labels.indptr[1:]] - cumulative[test_labels.indptr[:-1]]
        row_sizes = np.diff(test_labels.indptr)
        all_unseen = (row_sizes > 0) & (per_row_unseen == row_sizes)
        test["positives_unseen_in_train"] = unseen
        test["positives_unseen_in_train_pct"] = _pct(unseen, positives)
        test["points_all_labels_unseen"] = int(all_unseen.sum())
        stats["test"] = test
    return stats


def _split_stats(split: XMCSplit) -> dict[str, Any]:
    sizes = np.diff(split.labels.indptr)
    out: dict[str, Any] = {
        "points": split.num_points,
        "positives": int(split.labels.nnz),
        "avg_labels_per_point": _ratio(split.labels.nnz, split.num_points),
        "max_labels_per_point": int(sizes.max()) if sizes.size else 0,
        "points_without_labels": int((sizes == 0).sum()),
        "filter_pairs": int(split.filter_pairs.shape[0]),
    }
    if split.texts is not None:
        lengths = np.fromiter(map(len, split.texts), dtype=np.int64, count=len(split.texts))
        words = sum(len(text.split()) for text in split.texts)
        out["avg_text_chars"] = _ratio(lengths.sum(), lengths.size)
        out["avg_text_words"] = _ratio(words, lengths.size)
        out["max_text_chars"] = int(lengths.max()) if lengths.size else 0
    if split.features is not None:
        out["num_features"] = int(split.features.shape[1])
        out["avg_features_per_point"] = _ratio(split.features.nnz, split.num_points)
    return out


def _label_counts(split: XMCSplit, num_labels: int) -> np.ndarray:
    return np.bincount(split.labels.indices, minlength=num_labels)


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return dict.fromkeys(QUANTILES, 0.0)
    values = np.percentile(counts, list(QUANTILES.values()))
    return {key: float(v) for key, v in zip(QUANTILES, values, strict=True)}


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _pct(numerator: float, denominator: float) -> float:
    return 100.0 * _ratio(numerator, denominator)

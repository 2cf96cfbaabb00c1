"""dataset_stats against the table in examples/debian-deps-mini/README.md (the oracle)."""

from __future__ import annotations

import warnings

import pytest
from data_helpers import EXAMPLE_MINI, FIXTURES

from elmo_core.data import dataset_stats, load_dataset


@pytest.fixture(scope="module")
def mini_stats() -> dict:
    return dataset_stats(load_dataset(EXAMPLE_MINI))


def test_mini_counts_match_readme(mini_stats: dict) -> None:
    train, test, labels = mini_stats["train"], mini_stats["test"], mini_stats["labels"]
    assert (train["points"], test["points"]) == (3000, 750)
    assert mini_stats["num_labels"] == labels["total"] == 8779
    assert labels["seen_in_train"] == 7637
    assert labels["only_in_test"] == 1142
    assert labels["unused"] == 0
    assert train["max_labels_per_point"] == 743
    assert test["positives"] == 4084
    assert test["positives_unseen_in_train"] == 1186
    assert test["points_all_labels_unseen"] == 100
    assert (train["filter_pairs"], test["filter_pairs"]) == (406, 114)
    assert train["points_without_labels"] == test["points_without_labels"] == 0
    assert train["max_text_chars"] == 1102


def test_mini_rounded_values_match_readme(mini_stats: dict) -> None:
    train, test, labels = mini_stats["train"], mini_stats["test"], mini_stats["labels"]
    assert round(train["avg_labels_per_point"], 2) == 5.67
    assert round(test["avg_labels_per_point"], 2) == 5.45
    assert round(labels["avg_train_points_per_label"], 2) == 1.94
    assert round(labels["avg_train_points_per_seen_label"], 2) == 2.23
    assert round(labels["with_at_most_5_train_points_pct"], 1) == 96.4
    assert round(test["positives_unseen_in_train_pct"], 2) == 29.04
    assert round(labels["avg_text_chars"]) == 63
    quantiles = labels["train_frequency_quantiles"]
    assert list(quantiles["all_labels"].values()) == [0, 0, 1, 1, 1, 2, 14, 1138]
    assert list(quantiles["seen_in_train"].values()) == [1, 1, 1, 1, 1, 3, 17, 1138]
    assert list(quantiles["all_labels"]) == ["min", "10%", "25%", "50%", "75%", "90%", "99%", "max"]
    # README: avg input length 423 chars, 62 words over all points
    chars = (train["avg_text_chars"] * 3000 + test["avg_text_chars"] * 750) / 3750
    words = (train["avg_text_words"] * 3000 + test["avg_text_words"] * 750) / 3750
    assert (round(chars), round(words)) == (423, 62)


def test_hand_counted_tiny_stats() -> None:
    stats = dataset_stats(load_dataset(FIXTURES / "lf-tiny"))
    # train label counts: [2, 1, 2, 1, 1]; test labels {4, 1}, {0}: all seen in train
    assert stats["labels"]["seen_in_train"] == 5
    assert stats["labels"]["only_in_test"] == 0
    assert stats["train"]["positives"] == 7
    assert stats["test"]["positives_unseen_in_train"] == 0
    assert stats["test"]["points_all_labels_unseen"] == 0
    assert stats["labels"]["train_frequency_quantiles"]["all_labels"]["max"] == 2


def test_unseen_labels_counted_per_point() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(FIXTURES / "jsonl-tiny")
    stats = dataset_stats(ds)
    # test: {http, cli, unseen} and {} -> 1 unseen positive of 3; no point has only unseen labels
    assert stats["test"]["positives_unseen_in_train"] == 1
    assert stats["test"]["positives_unseen_in_train_pct"] == pytest.approx(100 / 3)
    assert stats["test"]["points_all_labels_unseen"] == 0
    assert stats["test"]["points_without_labels"] == 1
    assert stats["labels"]["only_in_test"] == 1
    assert stats["train"]["avg_labels_per_point"] == 2.0

"""examples/wordnet-taxonomy loads and matches the statistics table of its README (the oracle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elmo_core.data import XMCDataset, dataset_stats, load_dataset

WORDNET = Path(__file__).resolve().parents[3] / "examples" / "wordnet-taxonomy"


@pytest.fixture(scope="module")
def wordnet() -> XMCDataset:
    return load_dataset(WORDNET)


@pytest.fixture(scope="module")
def wordnet_stats(wordnet: XMCDataset) -> dict:
    return dataset_stats(wordnet)


def test_wordnet_loads_as_lf_raw_with_texts(wordnet: XMCDataset) -> None:
    assert wordnet.format == "lf-raw" and wordnet.name == "wordnet-taxonomy"
    assert wordnet.test is not None
    assert wordnet.label_texts is not None and len(wordnet.label_texts) == 20359
    assert wordnet.train.texts is not None and wordnet.test.texts is not None
    assert wordnet.train.texts[0].startswith("skimmer: gull-like seabird")
    first_labels = wordnet.train.labels.indices[: wordnet.train.labels.indptr[1]]
    assert [wordnet.label_texts[i].split(":")[0] for i in first_labels] == [
        "aquatic bird",
        "coastal diving bird",
        "Rynchops, genus Rynchops",
        "seabird, sea bird, seafowl",
    ]


def test_wordnet_counts_match_readme(wordnet_stats: dict) -> None:
    train, test, labels = wordnet_stats["train"], wordnet_stats["test"], wordnet_stats["labels"]
    assert (train["points"], test["points"]) == (37413, 12587)
    assert wordnet_stats["num_labels"] == labels["total"] == 20359
    assert labels["seen_in_train"] == 17852
    assert labels["only_in_test"] == 2507
    assert labels["unused"] == 0
    assert (train["max_labels_per_point"], test["max_labels_per_point"]) == (21, 14)
    assert test["positives"] == 44613
    assert test["positives_unseen_in_train"] == 2790
    assert test["points_all_labels_unseen"] == 3
    assert (train["filter_pairs"], test["filter_pairs"]) == (9385, 3034)
    assert train["points_without_labels"] == test["points_without_labels"] == 0
    assert train["max_text_chars"] == 605


def test_wordnet_rounded_values_match_readme(wordnet_stats: dict) -> None:
    train, test, labels = wordnet_stats["train"], wordnet_stats["test"], wordnet_stats["labels"]
    assert round(train["avg_labels_per_point"], 2) == 3.55
    assert round(test["avg_labels_per_point"], 2) == 3.54
    assert 2.0 <= test["avg_labels_per_point"] <= train["avg_labels_per_point"] <= 4.0
    assert round(labels["avg_train_points_per_label"], 2) == 6.53
    assert round(labels["avg_train_points_per_seen_label"], 2) == 7.45
    assert round(labels["with_at_most_5_train_points_pct"], 1) == 83.3
    assert round(test["positives_unseen_in_train_pct"], 2) == 6.25
    assert round(train["avg_text_chars"]) == 99
    assert round(labels["avg_text_chars"]) == 82
    quantiles = labels["train_frequency_quantiles"]
    assert [round(v) for v in quantiles["all_labels"].values()] == [0, 0, 1, 1, 3, 10, 93, 2224]
    assert [round(v) for v in quantiles["seen_in_train"].values()] == [1, 1, 1, 2, 4, 11, 103, 2224]


def test_wordnet_filter_pairs_are_self_pairs_outside_the_truth(wordnet: XMCDataset) -> None:
    """Each filter pair names the point's own synset: its label text opens the input text."""
    assert wordnet.label_texts is not None
    for split in (wordnet.train, wordnet.test):
        assert split is not None and split.texts is not None
        pairs = split.filter_pairs
        assert len(np.unique(pairs[:, 0])) == len(pairs)
        truth = split.labels.tocsr()
        assert all(truth[row, label] == 0 for row, label in pairs[:200])
        for row, label in pairs[:200]:
            lemmas = wordnet.label_texts[label].split(": ", 1)[0]
            assert split.texts[row].startswith(lemmas)

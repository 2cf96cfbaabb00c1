"""bench/peers.py: the XMC file Omikuji reads, the top-k glue and the scoring (no peers needed);
one tiny end-to-end run per peer where omikuji / napkinxc are installed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from elmo_core.data import load_dataset
from elmo_core.data.dataset import XMCSplit

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "examples" / "debian-deps-mini"


def _load_peers():
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "bench" / "peers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module
    spec.loader.exec_module(module)
    return module


peers = _load_peers()


def test_write_xmc_file_round_trips(tmp_path: Path) -> None:
    x = sp.csr_matrix(np.array([[0.0, 0.5, 0.25], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32))
    path = tmp_path / "train.txt"
    peers.write_xmc_file(path, x, [[2, 0], [1], [3]], num_labels=4)
    lines = path.read_text().splitlines()
    assert lines == ["3 3 4", "2,0 1:0.5 2:0.25", "1 0:1", "3"]
    with pytest.raises(ValueError, match="no label"):
        peers.write_xmc_file(path, x, [[0], [], [1]], num_labels=4)


def test_labelled_rows_and_topk_padding() -> None:
    x = sp.csr_matrix(np.eye(3, dtype=np.float32))
    y = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], np.float32))
    kept_x, kept_y = peers.labelled_rows(x, y)
    assert kept_y == [[0, 2], [1]]
    assert kept_x.toarray().tolist() == [[1, 0, 0], [0, 0, 1]]
    ids = peers.as_topk([[4, 2], [], [1, 2, 3, 5]], depth=3)
    assert ids.tolist() == [[4, 2, -1], [-1, -1, -1], [1, 2, 3]]


def test_score_uses_elmo_metrics_with_filter_pairs() -> None:
    truth = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 0]], np.float32))
    split = XMCSplit(labels=truth, filter_pairs=np.array([[0, 1]], np.int64))
    ids = np.array([[1, 0, 2, 3, -1, -1], [3, 2, 0, 1, -1, -1]], np.int64)
    metrics = peers.score(ids, split, np.full(4, 0.5))
    # Row 0: the filtered label 1 drops out, label 0 moves to rank 1; row 1 hits at rank 2.
    assert metrics["P@1"] == pytest.approx(50.0)
    assert metrics["P@3"] == pytest.approx(100.0 * (1 / 3 + 1 / 3) / 2)
    assert set(peers.SHOWN) <= set(metrics)


def test_featurize_uses_elmo_tfidf_on_train_texts() -> None:
    dataset = load_dataset(MINI)
    x_train, x_test = peers.featurize(dataset, workers=1)
    assert x_train.shape[0] == dataset.train.num_points
    assert x_test.shape == (dataset.test.num_points, x_train.shape[1])
    norms = np.sqrt(np.asarray(x_train.multiply(x_train).sum(axis=1))).ravel()
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-4)


@pytest.mark.parametrize("method,module", [("bonsai", "omikuji"), ("plt", "napkinxc")])
def test_peer_end_to_end_tiny(method: str, module: str, tmp_path: Path) -> None:
    pytest.importorskip(module)
    data = _tiny_jsonl(tmp_path / "tiny")
    out = tmp_path / "rows.jsonl"
    work = tmp_path / "work"
    code = peers.main(
        [
            str(data),
            "--methods",
            method,
            "--threads",
            "1",
            "--workdir",
            str(work),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert row["method"] == method and row["metrics_split"] == "test"
    assert 20.0 < row["metrics"]["P@1"] <= 100.0


def _tiny_jsonl(directory: Path, train: int = 400, test: int = 100) -> Path:
    """The first points of debian-deps-mini as a JSONL dataset (a few seconds to train)."""
    dataset = load_dataset(MINI)
    directory.mkdir()
    for name, split, count in (("train", dataset.train, train), ("test", dataset.test, test)):
        with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for row in range(count):
                labels = split.labels[row].indices.tolist()
                record = {"text": split.texts[row], "labels": [f"l{label}" for label in labels]}
                handle.write(json.dumps(record) + "\n")
    return directory

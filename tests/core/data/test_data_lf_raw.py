"""The LF raw-text reader on the committed fixture, the example dataset and chunked parsing."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import EXAMPLE_MINI, FIXTURES, MakeDataset

from elmo_core.data import XMCDataset, load_dataset, textio

TRAIN_DENSE = np.array(
    [
        [0, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [1, 0, 0, 1, 0.5],
        [0, 0, 1, 0, 0],
    ],
    dtype=np.float32,
)


def _check_tiny(ds: XMCDataset) -> None:
    assert ds.format == "lf-raw"
    assert ds.num_labels == 5
    assert ds.label_texts == [
        "alpha: first letter",
        "beta: second letter",
        "gamma: third letter",
        "delta: fourth letter",
        "epsilon: fifth letter",
    ]
    labels = ds.train.labels
    assert labels.dtype == np.float32 and labels.has_sorted_indices
    np.testing.assert_array_equal(labels.toarray(), TRAIN_DENSE)
    assert np.all(np.diff(labels.indices[labels.indptr[2] : labels.indptr[3]]) > 0)
    assert ds.train.texts[2] == "gamma café ünïcode tool"
    assert ds.train.features is None
    np.testing.assert_array_equal(ds.train.filter_pairs, [[0, 0], [2, 3]])
    assert ds.train.filter_pairs.dtype == np.int64
    assert ds.test is not None and ds.test.num_points == 2
    np.testing.assert_array_equal(ds.test.labels.toarray(), [[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]])
    assert ds.test.texts == ["epsilon test point", "another test point"]
    np.testing.assert_array_equal(ds.test.filter_pairs, [[0, 4]])


def test_tiny_fixture_loads_exactly() -> None:
    ds = load_dataset(FIXTURES / "lf-tiny")
    assert ds.name == "lf-tiny"
    _check_tiny(ds)


def test_crlf_line_ends_give_the_same_dataset(make_dataset: MakeDataset) -> None:
    files = [p for p in (FIXTURES / "lf-tiny").iterdir()]
    changes = {p.name: p.read_bytes().replace(b"\n", b"\r\n") for p in files}
    _check_tiny(load_dataset(make_dataset("lf-tiny", changes)))


def test_utf8_byte_order_marks_are_ignored(make_dataset: MakeDataset) -> None:
    files = [p for p in (FIXTURES / "lf-tiny").iterdir()]
    changes = {p.name: b"\xef\xbb\xbf" + p.read_bytes() for p in files}
    _check_tiny(load_dataset(make_dataset("lf-tiny", changes)))


def test_parsing_in_many_small_chunks_gives_the_same_dataset(
    make_dataset: MakeDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(textio, "CHUNK_BYTES", 7)
    _check_tiny(load_dataset(make_dataset("lf-tiny")))


def test_chunked_error_reports_the_global_line(
    make_dataset: MakeDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elmo_core.errors import DatasetFormatError

    monkeypatch.setattr(textio, "CHUNK_BYTES", 5)
    bad = "4 5\n1:1\n0:1\n3:1\n2:1 9:1\n"
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(make_dataset("lf-tiny", {"trn_X_Y.txt": bad}))
    assert (info.value.line, info.value.reason) == (5, "label id 9 out of range: must be < 5")


def test_optional_files_may_be_absent(make_dataset: MakeDataset) -> None:
    root = make_dataset(
        "lf-tiny",
        {
            "Y.txt": None,
            "trn_filter_labels.txt": None,
            "tst_X.txt": None,
            "tst_X_Y.txt": None,
            "tst_filter_labels.txt": None,
        },
    )
    ds = load_dataset(root)
    assert ds.label_texts is None and ds.test is None
    assert ds.train.filter_pairs.shape == (0, 2)
    np.testing.assert_array_equal(ds.train.labels.toarray(), TRAIN_DENSE)


def test_empty_filter_file_means_no_pairs(make_dataset: MakeDataset) -> None:
    ds = load_dataset(make_dataset("lf-tiny", {"trn_filter_labels.txt": ""}))
    assert ds.train.filter_pairs.shape == (0, 2)


def test_sparse_features_file_is_read_beside_texts(make_dataset: MakeDataset) -> None:
    changes = {
        "trn_X_Xf.txt": "4 3\n0:0.5 2:1\n\n1:2.5e-1\n2:1 0:3\n",
        "tst_X_Xf.txt": "2 3\n1:1\n0:1 1:1 2:1\n",
    }
    ds = load_dataset(make_dataset("lf-tiny", changes))
    assert ds.train.texts is not None
    np.testing.assert_array_equal(
        ds.train.features.toarray(),
        np.array([[0.5, 0, 1], [0, 0, 0], [0, 0.25, 0], [3, 0, 1]], dtype=np.float32),
    )
    assert ds.train.features.dtype == np.float32
    assert ds.test.features.shape == (2, 3)


def test_features_alone_are_enough(make_dataset: MakeDataset) -> None:
    changes = {"trn_X.txt": None, "tst_X.txt": None, "trn_X_Xf.txt": "4 2\n0:1\n1:1\n0:1\n1:1\n"}
    changes["tst_X_Xf.txt"] = "2 2\n0:1\n1:1\n"
    ds = load_dataset(make_dataset("lf-tiny", changes))
    assert ds.train.texts is None and ds.train.features.shape == (4, 2)


def test_example_mini_dataset_loads() -> None:
    ds = load_dataset(EXAMPLE_MINI)
    assert (ds.train.num_points, ds.test.num_points, ds.num_labels) == (3000, 750, 8779)
    assert len(ds.train.texts) == 3000 and len(ds.label_texts) == 8779
    assert ds.train.labels.nnz == 17001 and ds.test.labels.nnz == 4084
    assert ds.train.filter_pairs.shape == (406, 2)
    # filter pairs are self pairs: the label text is a prefix of the input text
    row, label = ds.train.filter_pairs[0]
    package = ds.label_texts[label].split(":")[0]
    assert ds.train.texts[row].startswith(package + ":")

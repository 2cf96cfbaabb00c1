"""BoW and JSON-lines readers, format detection and the empty_rows policy."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from data_helpers import FIXTURES, MakeDataset

from elmo_core.data import EmptyRowsWarning, detect_format, load_dataset
from elmo_core.errors import DatasetFormatError


def test_bow_directory_loads_exactly() -> None:
    with pytest.warns(EmptyRowsWarning, match=r"1 in .*train\.txt"):
        ds = load_dataset(FIXTURES / "bow-tiny")
    assert (ds.format, ds.num_labels, ds.label_texts) == ("bow", 5, None)
    np.testing.assert_array_equal(
        ds.train.labels.toarray(),
        [[0, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]],
    )
    np.testing.assert_array_equal(
        ds.train.features.toarray(),
        np.array(
            [[1.5, 0, 0, 2, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0.25, 0, 0, 0, 0], [3, 0, 1, 0, 0, 0]],
            dtype=np.float32,
        ),
    )
    assert ds.train.texts is None and ds.train.features.has_sorted_indices
    np.testing.assert_array_equal(ds.test.labels.toarray(), [[0, 0, 0, 1, 0], [0, 1, 1, 1, 0]])
    np.testing.assert_array_equal(ds.test.features.toarray()[1], [0.5, 0, 0, 0, 0, 2])


def test_bow_single_file_is_train_only() -> None:
    ds = load_dataset(FIXTURES / "bow-tiny" / "test.txt")
    assert ds.format == "bow" and ds.test is None and ds.train.num_points == 2


def test_jsonl_directory_maps_sorted_names_to_ids() -> None:
    with pytest.warns(EmptyRowsWarning, match=r"1 in .*test\.jsonl"):
        ds = load_dataset(FIXTURES / "jsonl-tiny")
    assert ds.format == "jsonl"
    assert ds.label_texts == ["cli", "http", "parser", "unseen", "zeta"]
    assert ds.num_labels == 5
    assert ds.train.texts == ["a tool for parsing", "a web server", "café dans la rue"]
    np.testing.assert_array_equal(
        ds.train.labels.toarray(), [[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 1, 0, 0, 1]]
    )
    np.testing.assert_array_equal(ds.test.labels.toarray(), [[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]])
    assert ds.train.labels.has_sorted_indices and ds.train.labels.dtype == np.float32


def test_jsonl_single_file_is_train_only() -> None:
    ds = load_dataset(FIXTURES / "jsonl-tiny" / "train.jsonl")
    assert ds.test is None and ds.label_texts == ["cli", "http", "parser", "zeta"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("lf-tiny", "lf-raw"),
        ("bow-tiny", "bow"),
        ("bow-tiny/train.txt", "bow"),
        ("jsonl-tiny", "jsonl"),
        ("jsonl-tiny/test.jsonl", "jsonl"),
    ],
)
def test_detect_format(path: str, expected: str) -> None:
    assert detect_format(FIXTURES / path) == expected


def test_detect_jsonl_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a", "labels": ["x"]}\n')
    assert detect_format(path) == "jsonl"
    assert load_dataset(path).label_texts == ["x"]


def test_undetectable_directory(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("hello")
    with pytest.raises(DatasetFormatError, match="cannot detect the dataset format") as info:
        load_dataset(tmp_path)
    assert info.value.file == str(tmp_path) and info.value.line == 0


def test_undetectable_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello world\n")
    with pytest.raises(DatasetFormatError, match="cannot detect") as info:
        load_dataset(path)
    assert info.value.line == 1


def test_invalid_options_raise_value_error() -> None:
    with pytest.raises(ValueError, match="empty_rows"):
        load_dataset(FIXTURES / "lf-tiny", empty_rows="ignore")
    with pytest.raises(ValueError, match="format"):
        load_dataset(FIXTURES / "lf-tiny", format="csv")


EMPTY_ROW_CHANGES = {
    "trn_X_Y.txt": "4 5\n1:1.00000 2:1.00000\n\n3:1.00000 0:1.00000 4:0.50000\n2:1.00000\n",
    "trn_X_Xf.txt": "4 2\n0:1\n1:2\n0:3\n1:4\n",
    "trn_filter_labels.txt": "0 0\n1 2\n2 3\n3 1\n",
}


def test_empty_rows_warn_keeps_rows_and_warns_once(make_dataset: MakeDataset) -> None:
    root = make_dataset("lf-tiny", EMPTY_ROW_CHANGES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root)
    assert len(caught) == 1 and issubclass(caught[0].category, EmptyRowsWarning)
    assert "1 in" in str(caught[0].message) and "trn_X_Y.txt" in str(caught[0].message)
    assert ds.train.num_points == 4


def test_empty_rows_keep_is_silent(make_dataset: MakeDataset) -> None:
    root = make_dataset("lf-tiny", EMPTY_ROW_CHANGES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(root, empty_rows="keep")
    assert ds.train.num_points == 4 and ds.train.labels[1].nnz == 0


def test_empty_rows_drop_removes_row_everywhere(make_dataset: MakeDataset) -> None:
    ds = load_dataset(make_dataset("lf-tiny", EMPTY_ROW_CHANGES), empty_rows="drop")
    split = ds.train
    assert split.num_points == 3
    np.testing.assert_array_equal(
        split.labels.toarray(), [[0, 1, 1, 0, 0], [1, 0, 0, 1, 0.5], [0, 0, 1, 0, 0]]
    )
    assert split.texts == [
        "alpha package that needs beta and gamma",
        "gamma café ünïcode tool",
        "delta utility",
    ]
    np.testing.assert_array_equal(split.features.toarray(), [[1, 0], [3, 0], [0, 4]])
    # the pair of the dropped row goes; later rows are renumbered
    np.testing.assert_array_equal(split.filter_pairs, [[0, 0], [1, 3], [2, 1]])
    assert ds.test.num_points == 2


def test_dropping_every_point_leaves_no_train_split(tmp_path: Path) -> None:
    path = tmp_path / "all-empty.jsonl"
    path.write_text('{"text": "a", "labels": []}\n{"text": "b", "labels": []}\n')
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(path, empty_rows="drop")
    assert (info.value.file, info.value.line) == (str(path), 1)
    assert info.value.reason == "the train split has no points"

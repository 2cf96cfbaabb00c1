"""Each malformed-file defect raises DatasetFormatError naming the file, line and defect."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import MakeDataset

from elmo_core.data import load_dataset
from elmo_core.errors import DatasetFormatError

TRAIN_Y = "4 5\n1:1.00000 2:1.00000\n0:1.00000\n3:1.00000 0:1.00000 4:0.50000\n2:1.00000\n"


def _row3(row: str) -> str:
    """trn_X_Y.txt with its third point (line 4) replaced."""
    lines = TRAIN_Y.splitlines()
    lines[3] = row
    return "\n".join(lines) + "\n"


# (id, fixture, changes, load_dataset kwargs, file, line, reason)
CASES = [
    (
        "header-rows-more-than-file",
        "lf-tiny",
        {"trn_X_Y.txt": TRAIN_Y.replace("4 5", "5 5", 1)},
        {},
        "trn_X_Y.txt",
        1,
        "header says 5 rows but the file has 4",
    ),
    (
        "header-rows-fewer-than-file",
        "lf-tiny",
        {"trn_X_Y.txt": TRAIN_Y.replace("4 5", "3 5", 1)},
        {},
        "trn_X_Y.txt",
        1,
        "header says 3 rows but the file has 4",
    ),
    (
        "header-labels-vs-Y.txt",
        "lf-tiny",
        {"trn_X_Y.txt": TRAIN_Y.replace("4 5", "4 6", 1)},
        {},
        "trn_X_Y.txt",
        1,
        "header says 6 labels but Y.txt has 5 lines",
    ),
    (
        "header-labels-test-vs-train",
        "lf-tiny",
        {"tst_X_Y.txt": "2 6\n4:1\n0:1\n"},
        {},
        "tst_X_Y.txt",
        1,
        "header says 6 labels but trn_X_Y.txt says 5",
    ),
    (
        "header-malformed",
        "lf-tiny",
        {"trn_X_Y.txt": TRAIN_Y.replace("4 5", "4", 1)},
        {},
        "trn_X_Y.txt",
        1,
        "malformed header '4': expected 'num_points num_labels'",
    ),
    (
        "label-id-out-of-range",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1.0 5:1.0")},
        {},
        "trn_X_Y.txt",
        4,
        "label id 5 out of range: must be < 5",
    ),
    (
        "label-id-negative",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1.0 -1:1.0")},
        {},
        "trn_X_Y.txt",
        4,
        "negative label id -1",
    ),
    (
        "label-id-non-integer",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("1.5:1.0")},
        {},
        "trn_X_Y.txt",
        4,
        "non-integer label id '1.5'",
    ),
    (
        "label-id-not-a-number",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("x3:1.0")},
        {},
        "trn_X_Y.txt",
        4,
        "malformed label id 'x3'",
    ),
    (
        "pair-without-colon",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1.0 4;1.0")},
        {},
        "trn_X_Y.txt",
        4,
        "malformed 'label_id:value' pair '4;1.0'",
    ),
    (
        "pair-with-two-colons",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1.0:2")},
        {},
        "trn_X_Y.txt",
        4,
        "malformed 'label_id:value' pair '3:1.0:2'",
    ),
    (
        "pair-with-bad-value",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1.0.0")},
        {},
        "trn_X_Y.txt",
        4,
        "malformed value '1.0.0' in '3:1.0.0'",
    ),
    (
        "value-nan",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:nan")},
        {},
        "trn_X_Y.txt",
        4,
        "non-finite value 'nan' in '3:nan'",
    ),
    (
        "value-inf",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:-inf")},
        {},
        "trn_X_Y.txt",
        4,
        "non-finite value '-inf' in '3:-inf'",
    ),
    (
        "value-overflows-to-inf",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1e999")},
        {},
        "trn_X_Y.txt",
        4,
        "non-finite value '1e999' in '3:1e999' (overflows)",
    ),
    (
        "value-beyond-float32",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:-1e39")},
        {},
        "trn_X_Y.txt",
        4,
        "value '-1e39' in '3:-1e39' is out of float32 range",
    ),
    (
        "duplicate-label-in-row",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("3:1.0 0:1.0 3:1.0")},
        {},
        "trn_X_Y.txt",
        4,
        "duplicate label id 3",
    ),
    (
        "texts-more-lines-than-points",
        "lf-tiny",
        {"trn_X.txt": "a\nb\nc\nd\ne\n"},
        {},
        "trn_X.txt",
        5,
        "has 5 lines but trn_X_Y.txt has 4 points",
    ),
    (
        "texts-fewer-lines-than-points",
        "lf-tiny",
        {"trn_X.txt": "a\nb\nc\n"},
        {},
        "trn_X.txt",
        4,
        "has 3 lines but trn_X_Y.txt has 4 points",
    ),
    (
        "non-utf8-in-texts",
        "lf-tiny",
        {"trn_X.txt": b"a\nb\ncaf\xe9\nd\n"},
        {},
        "trn_X.txt",
        3,
        "not valid UTF-8: byte 0xe9 at column 4",
    ),
    (
        "non-utf8-in-label-matrix",
        "lf-tiny",
        {"trn_X_Y.txt": TRAIN_Y.encode().replace(b"0:1.00000\n", b"0:1.0\xff\n")},
        {},
        "trn_X_Y.txt",
        3,
        "not valid UTF-8: byte 0xff at column 6",
    ),
    (
        "non-utf8-in-label-texts",
        "lf-tiny",
        {"Y.txt": b"a\nb\n\xc3\nd\ne\n"},
        {},
        "Y.txt",
        3,
        "not valid UTF-8: byte 0xc3 at column 1",
    ),
    ("empty-texts-file", "lf-tiny", {"trn_X.txt": ""}, {}, "trn_X.txt", 0, "file is empty"),
    ("empty-label-matrix", "lf-tiny", {"tst_X_Y.txt": ""}, {}, "tst_X_Y.txt", 0, "file is empty"),
    (
        "missing-texts-and-features",
        "lf-tiny",
        {"trn_X.txt": None},
        {},
        "trn_X.txt",
        0,
        "file not found (nor trn_X_Xf.txt); trn_X_Y.txt needs one",
    ),
    (
        "missing-label-matrix",
        "lf-tiny",
        {"trn_X_Y.txt": None},
        {"format": "lf-raw"},
        "trn_X_Y.txt",
        0,
        "file not found",
    ),
    (
        "point-without-labels-error",
        "lf-tiny",
        {"trn_X_Y.txt": _row3("")},
        {"empty_rows": "error"},
        "trn_X_Y.txt",
        4,
        "point has no labels (1 such points in this file; empty_rows='error')",
    ),
    (
        "filter-row-out-of-range",
        "lf-tiny",
        {"trn_filter_labels.txt": "0 0\n4 1\n"},
        {},
        "trn_filter_labels.txt",
        2,
        "row id 4 out of range: must be < 4",
    ),
    (
        "filter-label-out-of-range",
        "lf-tiny",
        {"tst_filter_labels.txt": "1 5\n"},
        {},
        "tst_filter_labels.txt",
        1,
        "label id 5 out of range: must be < 5",
    ),
    (
        "filter-huge-label",
        "lf-tiny",
        {"tst_filter_labels.txt": "0 1\n1 100000000000000000000\n"},
        {},
        "tst_filter_labels.txt",
        2,
        "label id 100000000000000000000 out of range: must be < 5",
    ),
    (
        "header-rows-last-line-without-newline",
        "lf-tiny",
        {"tst_X_Y.txt": "3 5\n4:1\n0:1"},
        {},
        "tst_X_Y.txt",
        1,
        "header says 3 rows but the file has 2",
    ),
    (
        "filter-negative-row",
        "lf-tiny",
        {"trn_filter_labels.txt": "-1 0\n"},
        {},
        "trn_filter_labels.txt",
        1,
        "negative row id -1",
    ),
    (
        "filter-malformed-line",
        "lf-tiny",
        {"trn_filter_labels.txt": "0 0\n2\n"},
        {},
        "trn_filter_labels.txt",
        2,
        "expected 'row label' (two integers), got '2'",
    ),
    (
        "features-id-out-of-range",
        "lf-tiny",
        {"trn_X_Xf.txt": "4 3\n0:1\n3:1\n1:1\n2:1\n"},
        {},
        "trn_X_Xf.txt",
        3,
        "feature id 3 out of range: must be < 3",
    ),
    (
        "features-rows-vs-labels",
        "lf-tiny",
        {"trn_X_Xf.txt": "3 3\n0:1\n1:1\n2:1\n"},
        {},
        "trn_X_Xf.txt",
        1,
        "header says 3 points but trn_X_Y.txt has 4",
    ),
    (
        "features-test-width-vs-train",
        "lf-tiny",
        {"trn_X_Xf.txt": "4 3\n0:1\n1:1\n2:1\n0:1\n", "tst_X_Xf.txt": "2 4\n0:1\n3:1\n"},
        {},
        "tst_X_Xf.txt",
        1,
        "header says 4 features but the train split has 3",
    ),
    (
        "bow-header-malformed",
        "bow-tiny",
        {"train.txt": "4 6\n1 0:1\n"},
        {},
        "train.txt",
        1,
        "malformed header '4 6': expected 'num_points num_features num_labels'",
    ),
    (
        "bow-header-rows",
        "bow-tiny",
        {"test.txt": "3 6 5\n3 4:1\n1 0:1\n"},
        {},
        "test.txt",
        1,
        "header says 3 rows but the file has 2",
    ),
    (
        "bow-label-out-of-range",
        "bow-tiny",
        {"test.txt": "2 6 5\n3 4:1\n1,5 0:1\n"},
        {},
        "test.txt",
        3,
        "label id 5 out of range: must be < 5",
    ),
    (
        "bow-label-non-integer",
        "bow-tiny",
        {"test.txt": "2 6 5\n3 4:1\n1,2.0 0:1\n"},
        {},
        "test.txt",
        3,
        "non-integer label id '2.0'",
    ),
    (
        "bow-duplicate-label",
        "bow-tiny",
        {"test.txt": "2 6 5\n3,1,3 4:1\n1 0:1\n"},
        {},
        "test.txt",
        2,
        "duplicate label id 3",
    ),
    (
        "bow-feature-out-of-range",
        "bow-tiny",
        {"test.txt": "2 6 5\n3 6:1\n1 0:1\n"},
        {},
        "test.txt",
        2,
        "feature id 6 out of range: must be < 6",
    ),
    (
        "bow-duplicate-feature",
        "bow-tiny",
        {"test.txt": "2 6 5\n3 4:1 4:2\n1 0:1\n"},
        {},
        "test.txt",
        2,
        "duplicate feature id 4",
    ),
    (
        "bow-feature-nan",
        "bow-tiny",
        {"test.txt": "2 6 5\n3 4:NaN\n1 0:1\n"},
        {},
        "test.txt",
        2,
        "non-finite value 'NaN' in '4:NaN'",
    ),
    (
        "bow-test-dims-vs-train",
        "bow-tiny",
        {"test.txt": "2 7 5\n3 4:1\n1 0:1\n"},
        {},
        "test.txt",
        1,
        "header says 7 features and 5 labels but train.txt says 6 and 5",
    ),
    (
        "jsonl-bad-json",
        "jsonl-tiny",
        {"test.jsonl": '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": [}\n'},
        {},
        "test.jsonl",
        2,
        "invalid JSON: Expecting value at column 26",
    ),
    (
        "jsonl-blank-line",
        "jsonl-tiny",
        {"test.jsonl": '{"text": "a", "labels": ["x"]}\n\n'},
        {},
        "test.jsonl",
        2,
        "invalid JSON: Expecting value at column 1",
    ),
    (
        "jsonl-missing-labels",
        "jsonl-tiny",
        {"train.jsonl": '{"text": "a", "labels": ["x"]}\n{"text": "b"}\n'},
        {},
        "train.jsonl",
        2,
        "missing key 'labels'",
    ),
    (
        "jsonl-missing-text",
        "jsonl-tiny",
        {"train.jsonl": '{"labels": ["x"]}\n'},
        {},
        "train.jsonl",
        1,
        "missing key 'text'",
    ),
    (
        "jsonl-not-an-object",
        "jsonl-tiny",
        {"train.jsonl": '["a", ["x"]]\n'},
        {},
        "train.jsonl",
        1,
        "expected a JSON object, got a list",
    ),
    (
        "jsonl-text-not-string",
        "jsonl-tiny",
        {"train.jsonl": '{"text": 3, "labels": ["x"]}\n'},
        {},
        "train.jsonl",
        1,
        "'text' must be a string, got int",
    ),
    (
        "jsonl-labels-not-list",
        "jsonl-tiny",
        {"train.jsonl": '{"text": "a", "labels": "x"}\n'},
        {},
        "train.jsonl",
        1,
        "'labels' must be a list, got a string",
    ),
    (
        "jsonl-label-not-string",
        "jsonl-tiny",
        {"train.jsonl": '{"text": "a", "labels": ["x", 7]}\n'},
        {},
        "train.jsonl",
        1,
        "label names must be non-empty strings, got 7",
    ),
    (
        "jsonl-duplicate-label",
        "jsonl-tiny",
        {"train.jsonl": '{"text": "a", "labels": ["x", "y", "x"]}\n'},
        {},
        "train.jsonl",
        1,
        "duplicate label 'x'",
    ),
    (
        "jsonl-non-utf8",
        "jsonl-tiny",
        {"train.jsonl": b'{"text": "a", "labels": ["x"]}\n{"text": "\xff", "labels": []}\n'},
        {},
        "train.jsonl",
        2,
        "not valid UTF-8: byte 0xff at column 11",
    ),
]


@pytest.mark.parametrize(
    ("fixture", "changes", "kwargs", "file", "line", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_defect_raises_with_file_line_and_reason(
    make_dataset: MakeDataset,
    fixture: str,
    changes: dict,
    kwargs: dict,
    file: str,
    line: int,
    reason: str,
) -> None:
    root = make_dataset(fixture, changes)
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(root, **kwargs)
    error = info.value
    assert Path(error.file) == root / file
    assert (error.line, error.reason) == (line, reason)
    where = f"{root / file}:{line}" if line else str(root / file)
    assert str(error) == f"{where}: {reason}"


def test_missing_dataset_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(tmp_path / "nope")
    assert (info.value.file, info.value.line) == (str(tmp_path / "nope"), 0)
    assert info.value.reason == "dataset path not found"


def test_train_split_without_points(make_dataset: MakeDataset) -> None:
    changes = {"trn_X_Y.txt": "0 5\n", "trn_X.txt": None, "trn_X_Xf.txt": "0 2\n"}
    changes.update({"trn_filter_labels.txt": None, "tst_X_Y.txt": None})
    root = make_dataset("lf-tiny", changes)
    with pytest.raises(DatasetFormatError) as info:
        load_dataset(root)
    assert (Path(info.value.file), info.value.line) == (root / "trn_X_Y.txt", 1)
    assert info.value.reason == "the train split has no points"

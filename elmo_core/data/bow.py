"""Reader for the Extreme Classification Repository's sparse BoW format.

One file per split: header `num_points num_features num_labels`, then one line per point:
`l1,l2,... f:v f:v ...` (0-based ids). A point without labels starts directly with its features
(or with a blank). A path is either such a file (train only) or a directory with `train.txt` and
optionally `test.txt` (and optionally `Y.txt`, label texts).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from elmo_core.data.dataset import XMCSplit
from elmo_core.data.rows import LoadedSplit
from elmo_core.data.sparse import build_csr, parse_pairs
from elmo_core.data.textio import (
    count_lines,
    iter_chunks,
    parse_header,
    read_bytes,
    read_lines,
    split_header,
)
from elmo_core.errors import DatasetFormatError

HEADER = ("num_points", "num_features", "num_labels")
_SEP_RE = re.compile(r"[ \t]+")


def read_bow(path: Path) -> tuple[int, list[LoadedSplit], list[str] | None]:
    """Read a BoW file or directory: (num_labels, [train, test?] splits, label texts or None)."""
    train_path = path / "train.txt" if path.is_dir() else path
    train, (num_features, num_labels) = read_bow_file(train_path)
    splits = [train]
    test_path = path / "test.txt"
    if path.is_dir() and test_path.exists():
        test, test_dims = read_bow_file(test_path)
        if test_dims != (num_features, num_labels):
            raise DatasetFormatError(
                str(test_path),
                1,
                f"header says {test_dims[0]} features and {test_dims[1]} labels but "
                f"{train_path.name} says {num_features} and {num_labels}",
            )
        splits.append(test)
    label_texts = None
    if path.is_dir() and (path / "Y.txt").exists():
        label_texts = read_lines(path / "Y.txt")
        if len(label_texts) != num_labels:
            raise DatasetFormatError(
                str(train_path),
                1,
                f"header says {num_labels} labels but Y.txt has {len(label_texts)} lines",
            )
    return num_labels, splits, label_texts


def read_bow_file(path: Path) -> tuple[LoadedSplit, tuple[int, int]]:
    """Read one BoW file: the split and its (num_features, num_labels)."""
    file = str(path)
    data = read_bytes(path)
    header, start = split_header(data, file)
    num_points, num_features, num_labels = parse_header(header, HEADER, file)
    label_parts: tuple[list, list, list] = ([], [], [])
    feature_parts: tuple[list, list, list] = ([], [], [])
    rows_seen = 0
    for chunk in iter_chunks(data, start, file, first_line=2):
        rows_seen += len(chunk.lines)
        if rows_seen > num_points:
            break
        labels, features = _split_lines(chunk.lines)
        for parts, lines, bound, what in (
            (label_parts, labels, num_labels, "label"),
            (feature_parts, features, num_features, "feature"),
        ):
            parsed = parse_pairs(lines, "\n".join(lines), chunk.first_line, file, bound, what)
            for store, array in zip(parts, parsed, strict=True):
                store.append(array)
    if rows_seen != num_points:
        actual = count_lines(data, start)
        raise DatasetFormatError(
            file, 1, f"header says {num_points} rows but the file has {actual}"
        )
    labels_matrix = build_csr(*label_parts, num_labels)
    labels_matrix.data = np.ones_like(labels_matrix.data)
    features_matrix: sp.csr_matrix = build_csr(*feature_parts, num_features)
    split = XMCSplit(labels=labels_matrix, features=features_matrix)
    return LoadedSplit(split, file, first_row_line=2), (num_features, num_labels)


def _split_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split each line into its labels (as `l:1 l:1` pairs) and its `f:v` features."""
    labels: list[str] = []
    features: list[str] = []
    for line in lines:
        fields = _SEP_RE.split(line.strip(" \t"), maxsplit=1)
        head = fields[0]
        if ":" in head or not head:
            labels.append("")
            features.append(line)
        else:
            labels.append(head.replace(",", ":1 ") + ":1")
            features.append(fields[1] if len(fields) > 1 else "")
    return labels, features

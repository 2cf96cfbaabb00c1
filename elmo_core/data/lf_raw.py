"""Reader for the Extreme Classification Repository's LF layout (a directory of `trn_*`/`tst_*`).

Files: `trn_X_Y.txt` (required) and `tst_X_Y.txt` (optional test split), label matrices; per
split, raw texts `*_X.txt` and/or sparse features `*_X_Xf.txt` (at least one of them);
`Y.txt` label texts (optional; line i = label id i); `*_filter_labels.txt` (optional).
"""

from __future__ import annotations

from pathlib import Path

import scipy.sparse as sp

from elmo_core.data.dataset import XMCSplit
from elmo_core.data.matrix_files import read_filter_pairs, read_sparse_matrix
from elmo_core.data.rows import LoadedSplit
from elmo_core.data.textio import read_lines
from elmo_core.errors import DatasetFormatError

LABELS_HEADER = ("num_points", "num_labels")
FEATURES_HEADER = ("num_points", "num_features")


def read_lf_raw(root: Path) -> tuple[int, list[LoadedSplit], list[str] | None]:
    """Read the LF layout in `root`: (num_labels, [train, test?] splits, label texts or None)."""
    train_labels_path = root / "trn_X_Y.txt"
    train_labels = read_sparse_matrix(train_labels_path, LABELS_HEADER, "label")
    num_labels = train_labels.shape[1]
    label_texts = None
    if (root / "Y.txt").exists():
        label_texts = read_lines(root / "Y.txt")
        if len(label_texts) != num_labels:
            raise DatasetFormatError(
                str(train_labels_path),
                1,
                f"header says {num_labels} labels but Y.txt has {len(label_texts)} lines",
            )
    splits = [_read_split(root, "trn", train_labels, None)]
    test_labels_path = root / "tst_X_Y.txt"
    if test_labels_path.exists():
        test_labels = read_sparse_matrix(test_labels_path, LABELS_HEADER, "label")
        if test_labels.shape[1] != num_labels:
            raise DatasetFormatError(
                str(test_labels_path),
                1,
                f"header says {test_labels.shape[1]} labels but trn_X_Y.txt says {num_labels}",
            )
        train_features = splits[0].split.features
        num_features = None if train_features is None else train_features.shape[1]
        splits.append(_read_split(root, "tst", test_labels, num_features))
    return num_labels, splits, label_texts


def _read_split(
    root: Path, prefix: str, labels: sp.csr_matrix, num_features: int | None
) -> LoadedSplit:
    labels_file = f"{prefix}_X_Y.txt"
    texts_path = root / f"{prefix}_X.txt"
    features_path = root / f"{prefix}_X_Xf.txt"
    if not texts_path.exists() and not features_path.exists():
        raise DatasetFormatError(
            str(texts_path),
            0,
            f"file not found (nor {features_path.name}); {labels_file} needs one",
        )
    num_points = labels.shape[0]
    texts = None
    if texts_path.exists():
        texts = read_lines(texts_path)
        if len(texts) != num_points:
            raise DatasetFormatError(
                str(texts_path),
                min(len(texts), num_points) + 1,
                f"has {len(texts)} lines but {labels_file} has {num_points} points",
            )
    features = None
    if features_path.exists():
        features = read_sparse_matrix(features_path, FEATURES_HEADER, "feature")
        if features.shape[0] != num_points:
            raise DatasetFormatError(
                str(features_path),
                1,
                f"header says {features.shape[0]} points but {labels_file} has {num_points}",
            )
        if num_features is not None and features.shape[1] != num_features:
            raise DatasetFormatError(
                str(features_path),
                1,
                f"header says {features.shape[1]} features but the train split has {num_features}",
            )
    filter_pairs = read_filter_pairs(
        root / f"{prefix}_filter_labels.txt", num_points, labels.shape[1]
    )
    split = XMCSplit(labels=labels, texts=texts, features=features, filter_pairs=filter_pairs)
    return LoadedSplit(split, str(root / labels_file), first_row_line=2)

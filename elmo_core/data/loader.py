"""`load_dataset`: detect the format, read it, apply the empty-rows policy, return XMCDataset."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from elmo_core.data.bow import read_bow
from elmo_core.data.dataset import XMCDataset
from elmo_core.data.jsonl import read_jsonl
from elmo_core.data.lf_raw import read_lf_raw
from elmo_core.data.rows import LoadedSplit, apply_empty_rows
from elmo_core.data.vocabulary import EMPTY_ROWS_POLICIES, FORMATS
from elmo_core.errors import DatasetFormatError

Reader = Callable[[Path], tuple[int, list[LoadedSplit], list[str] | None]]
READERS: dict[str, Reader] = {"lf-raw": read_lf_raw, "bow": read_bow, "jsonl": read_jsonl}
_BOW_HEADER_RE = re.compile(rb"[ \t]*[0-9]+[ \t]+[0-9]+[ \t]+[0-9]+[ \t]*\r?")


def detect_format(path: Path) -> str:
    """Name the format of a dataset directory or file from the files present.

    Directory: `trn_X_Y.txt` -> "lf-raw", `train.jsonl` -> "jsonl", `train.txt` -> "bow".
    File: `.jsonl`/`.json` suffix or a first line starting with `{` -> "jsonl"; a first line of
    three integers (`N F L`) -> "bow".
    """
    if not path.exists():
        raise DatasetFormatError(str(path), 0, "dataset path not found")
    if path.is_dir():
        for marker, name in (
            ("trn_X_Y.txt", "lf-raw"),
            ("train.jsonl", "jsonl"),
            ("train.txt", "bow"),
        ):
            if (path / marker).exists():
                return name
        raise DatasetFormatError(
            str(path),
            0,
            "cannot detect the dataset format: expected trn_X_Y.txt (LF layout), "
            "train.jsonl (JSON lines) or train.txt (BoW)",
        )
    if path.suffix in (".jsonl", ".json"):
        return "jsonl"
    with path.open("rb") as handle:
        first = handle.readline().removeprefix(b"\xef\xbb\xbf")
    if first.lstrip().startswith(b"{"):
        return "jsonl"
    if _BOW_HEADER_RE.fullmatch(first.rstrip(b"\n")):
        return "bow"
    raise DatasetFormatError(
        str(path),
        1,
        "cannot detect the dataset format: expected a JSON object or a BoW header 'N F L'",
    )


def load_dataset(path: str | Path, *, format: str = "auto", empty_rows: str = "warn") -> XMCDataset:
    """Load a dataset in any supported format into one XMCDataset.

    `format`: "auto" (detect), "lf-raw", "bow" or "jsonl". `empty_rows`: what to do with points
    that have no labels: "warn" (keep, warn once with the count), "drop", "error", "keep".
    Every defect raises DatasetFormatError(file, line, reason); nothing half-loaded is returned.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if empty_rows not in EMPTY_ROWS_POLICIES:
        raise ValueError(f"empty_rows must be one of {EMPTY_ROWS_POLICIES}, got {empty_rows!r}")
    path = Path(path)
    name = format if format != "auto" else detect_format(path)
    num_labels, loaded, label_texts = READERS[name](path)
    splits = apply_empty_rows(loaded, empty_rows)
    if splits[0].num_points == 0:
        raise DatasetFormatError(loaded[0].labels_file, 1, "the train split has no points")
    return XMCDataset(
        name=path.stem if path.is_file() else path.resolve().name,
        format=name,
        num_labels=num_labels,
        train=splits[0],
        test=splits[1] if len(splits) > 1 else None,
        label_texts=label_texts,
    )

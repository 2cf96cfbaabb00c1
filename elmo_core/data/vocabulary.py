"""The dataset options' vocabulary, defined once: the formats and the empty-rows policies.

The config, the readers, the CLI and the REST API all take their choices from here.
"""

from __future__ import annotations

from typing import Literal, get_args

DatasetFormat = Literal["auto", "lf-raw", "bow", "jsonl"]
"""`auto` detects the format from the files present (see `loader.detect_format`)."""
FORMATS: tuple[str, ...] = get_args(DatasetFormat)

EmptyRowsPolicy = Literal["warn", "drop", "error", "keep"]
"""What to do with points that have no labels (see `rows.apply_empty_rows`)."""
EMPTY_ROWS_POLICIES: tuple[str, ...] = get_args(EmptyRowsPolicy)

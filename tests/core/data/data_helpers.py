"""Paths and types of the data tests (imported by module name, like `upload_helpers`): the
committed fixture datasets, the example dataset, and the `make_dataset` fixture's type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
EXAMPLE_MINI = Path(__file__).resolve().parents[3] / "examples" / "debian-deps-mini"

MakeDataset = Callable[..., Path]
"""make_dataset(name, changes=None) -> the root of an edited copy of fixture `name`."""

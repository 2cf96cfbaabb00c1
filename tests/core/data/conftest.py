"""The data tests' fixture: copies of the committed fixture datasets, edited per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from data_helpers import FIXTURES, MakeDataset


@pytest.fixture
def make_dataset(tmp_path: Path) -> MakeDataset:
    """Copy fixture `name` into tmp_path and apply `changes` ({file: text | bytes | None})."""

    def make(name: str, changes: dict[str, str | bytes | None] | None = None) -> Path:
        root = tmp_path / name
        shutil.copytree(FIXTURES / name, root)
        for file, content in (changes or {}).items():
            if content is None:
                (root / file).unlink()
            else:
                data = content.encode() if isinstance(content, str) else content
                (root / file).write_bytes(data)
        return root

    return make

"""The bench scripts' output: each measurement is one JSON object, printed and, when asked,
appended to a JSON-lines file (`docs/benchmarks.json` gathers the recorded ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(row: dict[str, Any], path: Path | str | None = None) -> None:
    """Print `row` as one JSON line; also append it to `path` when given."""
    line = json.dumps(row)
    print(line, flush=True)
    if path is not None:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

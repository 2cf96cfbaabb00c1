"""Reliability tests reuse the end-to-end helpers (`tests/e2e/e2e_stack.py`) and the service
upload helpers (`tests/service/upload_helpers.py`) by import."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("e2e", "service"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))

"""Shared fixtures: a way to run the `elmo` command in a subprocess."""

from __future__ import annotations

import shutil
import sys

import pytest


@pytest.fixture(scope="session")
def elmo_cmd() -> list[str]:
    """argv prefix that runs the `elmo` CLI (the installed script, else this interpreter)."""
    script = shutil.which("elmo")
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from elmo_core.cli.main import main; main()"]

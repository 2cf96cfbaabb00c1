"""The layers stay honest: the library imports neither the service nor the worker, the service
never imports the worker, and the API's schemas and app load without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_roots(package: str) -> dict[str, set[str]]:
    """file -> top-level packages it imports (module level or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                roots.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = roots
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"), [("elmo_core", {"service", "worker"}), ("service", {"worker"})]
)
def test_no_upward_imports(package: str, forbidden: set[str]) -> None:
    bad = {f: sorted(r & forbidden) for f, r in _imported_roots(package).items() if r & forbidden}
    assert bad == {}


@pytest.mark.parametrize("module", ["service.schemas", "service.main"])
def test_api_modules_load_without_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)

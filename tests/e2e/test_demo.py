"""`examples/demo.py` (what `make demo` runs) end to end: quiet, and its predictions make sense.

The demo starts a real `elmo serve` (API, Celery workers, embedded broker, SQLite) in a fresh
ELMO_HOME, trains over HTTP and prints predictions. Its whole output must be free of Celery's
banners and warnings, the queued job must never show a `None` step count, and the test packages
it shows must rank their real dependencies (not themselves).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from e2e_stack import free_port
from test_readme import NOISE, elmo_on_path

REPO = Path(__file__).resolve().parents[2]


def test_demo_is_quiet_and_predicts_dependencies(tmp_path: Path, elmo_cmd: list[str]) -> None:
    env = {
        **os.environ,
        "ELMO_HOME": str(tmp_path / "home"),
        "PATH": elmo_on_path(elmo_cmd, tmp_path / "bin"),
        "COLUMNS": "200",
    }
    for name in ("ELMO_DATABASE_URL", "ELMO_BROKER_URL", "ELMO_ARTIFACTS_DIR", "ELMO_QUEUE_PREFIX"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "examples/demo.py", "--port", str(free_port()), "--epochs", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for noise in (*NOISE, "Warning", "WARNING", "None steps", "Traceback"):
        assert noise not in output, f"the demo printed {noise!r}:\n{output}"
    # the four test packages, each with its real dependencies and at least one of them found
    blocks = output.split("depends on:")[1:]
    assert len(blocks) == 4, output
    for block in blocks:
        assert "✓" in block.split("\n\n")[0], block
    # rsyslog is itself a label: the demo excludes it and says so; it never ranks itself
    rsyslog = blocks[3].split("\n\n")[0]
    assert "its own label rsyslog is excluded" in rsyslog
    assert not re.search(r"^\s+✓?\s*[\d.]+\s+rsyslog:", rsyslog, re.M), rsyslog
    assert "packages that do not exist" in output and "python3-yaml:" in output
    assert "validation metrics per epoch" in output  # the split the epochs were scored on
    assert re.search(r"served: epoch \d+, test split", output), output


def test_a_job_without_a_step_count_shows_no_steps() -> None:
    spec = importlib.util.spec_from_file_location("demo", REPO / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.steps_text(None, None) == demo.steps_text(0, None) == ""  # queued, loading
    assert demo.steps_text(None, 69) == "0/69 steps" and demo.steps_text(12, 69) == "12/69 steps"

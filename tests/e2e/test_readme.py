"""`elmo serve` as a subprocess, driven over HTTP by the README's curl blocks, run verbatim; and
CI (`.ci/run`) runs the README's Quick start as written.

The blocks of the README's service section that use `$ELMO_URL` run in order as one bash script
from the repository root. Only if port 8000 is taken is the `export ELMO_URL=` line pointed at the
port `elmo serve` got instead.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_stack import Proc, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]
BLOCK_RE = re.compile(r"```bash\n(.*?)```", re.S)
NOISE = (
    "SecurityWarning",
    "superuser privileges",
    "No hostname was supplied",
    "[queues]",
    "Warm shutdown",
)
"""What Celery printed from `elmo serve` before it ran its workers quiet: root and hostname
warnings, the start-up banner, the shutdown notices."""


def readme_blocks() -> list[str]:
    """The bash blocks of the README's service section that talk to the API."""
    text = (REPO / "README.md").read_text()
    section = text.split("<!-- section:service -->")[1].split("<!-- /section:service -->")[0]
    return [b for b in BLOCK_RE.findall(section) if "$ELMO_URL" in b]


def quick_start_commands() -> list[str]:
    """The commands of the README's Quick start block, comments and blank lines dropped."""
    section = (REPO / "README.md").read_text().split("## Quick start")[1].split("\n## ")[0]
    block = BLOCK_RE.findall(section)[0]
    return [c for line in block.splitlines() if (c := line.split("#")[0].strip())]


def json_documents(text: str) -> list:
    """Every JSON object in curl's output (responses are not newline-terminated)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) != -1:
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs


def processes_with_env(entry: str, wait_s: float = 30) -> list[int]:
    """PIDs whose environment holds `entry`, once none are left or after wait_s seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        pids = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if entry.encode() in environ.read_bytes().split(b"\0"):
                    pids.append(int(environ.parent.name))
            except OSError:
                continue
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.5)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def elmo_on_path(elmo_cmd: list[str], bin_dir: Path) -> str:
    """A PATH where `elmo` resolves (a shim when the package is not installed)."""
    if len(elmo_cmd) > 1:
        bin_dir.mkdir()
        shim = bin_dir / "elmo"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{elmo_cmd[-1]}" "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
        return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return os.environ["PATH"]


def test_readme_curl_examples_against_elmo_serve(tmp_path: Path, elmo_cmd: list[str]) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3 and "curl" in blocks[0]
    port = 8000 if port_free(8000) else free_port()
    env = {
        **os.environ,
        "ELMO_HOME": str(tmp_path / "home"),
        "PATH": elmo_on_path(elmo_cmd, tmp_path / "bin"),
    }
    for name in ("ELMO_DATABASE_URL", "ELMO_BROKER_URL", "ELMO_ARTIFACTS_DIR", "ELMO_QUEUE_PREFIX"):
        env.pop(name, None)
    serve = Proc([*elmo_cmd, "serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", [serve])
        script = "set -euo pipefail\n" + "\n".join(blocks)
        if port != 8000:
            script = script.replace(
                "export ELMO_URL=http://127.0.0.1:8000", f"export ELMO_URL=http://127.0.0.1:{port}"
            )
        result = subprocess.run(
            ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
        )
        assert result.returncode == 0, (result.stdout, result.stderr, serve.tail())
    finally:
        serve.stop()
    assert processes_with_env(f"ELMO_HOME={env['ELMO_HOME']}") == [], "workers outlived elmo serve"
    log = serve.tail(100_000)
    assert "exited with 'signal" not in log, "a worker's pool died at shutdown"
    for noise in NOISE:
        assert noise not in log, f"elmo serve printed {noise!r}"
    outputs = json_documents(result.stdout)
    job = next(o for o in outputs if "state" in o)
    assert job["state"] == "succeeded" and job["progress"]["epoch"] == 2
    predictions = next(o for o in outputs if "predictions" in o)["predictions"]
    assert [len(p) for p in predictions] == [5, 5]
    assert all(isinstance(p["label"], str) and p["label"] for p in predictions[0])
    plan = next(o for o in outputs if "fits" in o)
    assert plan["num_labels"] == 3_000_000 and isinstance(plan["fits"], bool)
    assert Path("/tmp/telemetry.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("block", range(3))
def test_readme_blocks_use_the_documented_url(block: int) -> None:
    assert "$ELMO_URL/v1/" in readme_blocks()[block]


def test_ci_runs_the_quick_start_as_written() -> None:
    commands = quick_start_commands()
    assert commands[0] == "make install" and commands[-1] == "make test", commands
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    # each command, in order; CI may only set ELMO_E2E_REQUIRE=1 in front of one
    plain = [line.removeprefix("ELMO_E2E_REQUIRE=1 ") for line in ci]
    assert [c for c in commands if c not in plain] == []
    positions = [plain.index(c) for c in commands]
    assert positions == sorted(positions), list(zip(commands, positions, strict=True))
    installs = [line for line in ci if "pip install" in line or "scripts/install" in line]
    assert installs == [], f"CI installs the project other than the README does: {installs}"

"""The bench scripts' service: `elmo serve` or `elmo api` started in a fresh `ELMO_HOME` (its
embedded broker and database), an API key for it, and the process stopped afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ELMO = [sys.executable, "-c", "from elmo_core.cli.main import main; main()"]


@dataclass
class LocalService:
    """A started service: its base URL, an API key and its process."""

    url: str
    key: str
    process: subprocess.Popen


@contextmanager
def local_service(
    command: str, home: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[LocalService]:
    """Run `elmo COMMAND --port PORT` (`serve` or `api`) with `ELMO_HOME=home` (emptied first)
    and `env` added, until its `/readyz` answers; stop it when the block ends. Exits the script
    when the process dies or does not become ready in 5 minutes."""
    shutil.rmtree(home, ignore_errors=True)
    full_env = {**os.environ, "ELMO_HOME": str(home), **(env or {})}
    for name in ("ELMO_BROKER_URL", "ELMO_DATABASE_URL"):
        full_env.pop(name, None)
    key = subprocess.run(
        [*ELMO, "keys", "create", "--name", "bench"],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*ELMO, command, "--port", str(port), "--log-level", "warning"], env=full_env
    )
    try:
        _wait_ready(url, process, command)
        yield LocalService(url, key, process)
    finally:
        process.terminate()
        process.wait(60)


def _wait_ready(url: str, process: subprocess.Popen, command: str) -> None:
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"elmo {command} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"{url} did not become ready")

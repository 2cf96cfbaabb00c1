"""Start and stop real service processes (API, workers, `elmo serve`) and talk to them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REDIS_URL = os.environ.get("ELMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_ADMIN_URL = os.environ.get(
    "ELMO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TERMINAL = ("succeeded", "failed", "cancelled")
MINI = Path(__file__).resolve().parents[2] / "examples" / "debian-deps-mini"
TINY = {
    "device": "cpu",
    "epochs": 1,
    "batch_size": 64,
    "threads": 1,
    "encoder": {"dim": 32},
    "data": {"max_train_points": 1000, "max_test_points": 200},
    # Every epoch runs: these tests count them (early stopping has its own tests).
    "eval": {"patience": None},
}


@dataclass
class Stack:
    """A running API + worker and HTTP clients for two owners."""

    url: str
    env: dict[str, str]
    alice: httpx.Client
    bob: httpx.Client
    anonymous: httpx.Client
    procs: list[Proc] = field(default_factory=list)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    """True if something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def postgres_database(options: str = "") -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database; its SQLAlchemy URL. Dropped afterwards.
    `options`: the rest of `CREATE DATABASE` (e.g. an encoding)."""
    import psycopg

    name = f"elmo_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" {options}')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Proc:
    """A child process whose output goes to a log file; stopped with SIGTERM then SIGKILL."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None):
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )

    def stop(self) -> None:
        """Terminate the process group (uvicorn/celery children included)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()

    def tail(self, n: int = 4000) -> str:
        """The end of the process's log."""
        return self.log.read_bytes()[-n:].decode(errors="replace")


def wait_http(url: str, procs: list[Proc], timeout: float = 90) -> None:
    """Wait until GET url answers 200; fail early with the log if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.log.name} exited:\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready; logs:\n" + "\n".join(p.tail() for p in procs))


def create_key(elmo_cmd: list[str], env: dict[str, str], name: str) -> str:
    """`elmo keys create --name NAME`; the key printed on stdout."""
    out = subprocess.run(
        [*elmo_cmd, "keys", "create", "--name", name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()


def wait_job(client: httpx.Client, path: str, until: tuple[str, ...] = TERMINAL, timeout=240):
    """Poll a job until its state is in `until`; return the last body."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["state"] in until:
            return body
        time.sleep(0.5)
    raise TimeoutError(f"{path} still {body.get('state')} after {timeout}s: {body}")


def start_redis(port: int, log: Path, timeout: float = 20) -> Proc:
    """A private, empty, non-persistent `redis-server` on 127.0.0.1:port (never the shared one)."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    proc = Proc(argv, dict(os.environ), log)
    deadline = time.monotonic() + timeout
    while not reachable("127.0.0.1", port):
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"redis-server on port {port} did not start:\n{proc.tail()}")
        time.sleep(0.1)
    return proc


def job_logs(client: httpx.Client, job_id: str) -> list[str]:
    """The messages of GET /v1/jobs/{id}/logs, oldest first."""
    response = client.get(f"/v1/jobs/{job_id}/logs")
    assert response.status_code == 200, response.text
    return [line["message"] for line in response.json()]

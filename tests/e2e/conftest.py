"""The real stack for end-to-end tests: `elmo api` + `elmo worker` processes + Redis, over SQLite
or a fresh PostgreSQL database, isolated by a unique queue prefix and Redis DB number.

Redis and PostgreSQL must run at their default local ports (CI has them). Without them the tests
skip, unless ELMO_E2E_REQUIRE=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from e2e_stack import (
    MINI,
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    Proc,
    Stack,
    create_key,
    free_port,
    postgres_database,
    reachable,
    wait_http,
)


def _need(host: str, port: int, what: str) -> None:
    if reachable(host, port):
        return
    message = f"{what} is not reachable at {host}:{port}"
    if os.environ.get("ELMO_E2E_REQUIRE") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mini_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/debian-deps-mini as a .tar.gz."""
    path = tmp_path_factory.mktemp("archives") / "debian-deps-mini.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(MINI, arcname="debian-deps-mini")
    return path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, elmo_cmd: list[str]
) -> Iterator[Stack]:
    """API and worker processes against Redis and the parametrised database."""
    _need("127.0.0.1", int(REDIS_URL.split(":")[2].split("/")[0]), "Redis")
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    with ExitStack() as stack_:
        if request.param == "postgres":
            _need("127.0.0.1", 5432, f"PostgreSQL ({POSTGRES_ADMIN_URL})")
            database_url = stack_.enter_context(postgres_database())
        else:
            database_url = f"sqlite:///{home / 'elmo.db'}"
        port = free_port()
        env = {
            **os.environ,
            "ELMO_HOME": str(home),
            "ELMO_DATABASE_URL": database_url,
            "ELMO_BROKER_URL": REDIS_URL,
            "ELMO_QUEUE_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}-",
            "ELMO_WORKER_GPU_MEMORY_GIB": "4",
            "ELMO_JOB_LEASE_SECONDS": "30",
        }
        api = Proc(
            [*elmo_cmd, "api", "--port", str(port), "--log-level", "warning"], env, home / "api.log"
        )
        stack_.callback(api.stop)
        worker = Proc([*elmo_cmd, "worker", "--loglevel", "INFO"], env, home / "worker.log")
        stack_.callback(worker.stop)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", [api, worker])
        clients = {}
        for owner in ("alice", "bob"):
            token = create_key(elmo_cmd, env, owner)
            clients[owner] = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            stack_.callback(clients[owner].close)
        anonymous = httpx.Client(base_url=url, timeout=60)
        stack_.callback(anonymous.close)
        yield Stack(url, env, clients["alice"], clients["bob"], anonymous, [api, worker])

"""Redis killed while one job runs and others are queued, then started again empty: the database
is the source of truth, so the reconciler re-sends the jobs whose messages vanished; the running
job carries on (its heartbeat goes to the database); every job succeeds, and each ran exactly once
(one claimed attempt, one start, one success, never re-queued) although two workers compete and
duplicate messages exist. A job submitted while Redis is down is accepted and runs too.

A private `redis-server` on a free port is used; the machine's Redis is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import tarfile
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from e2e_stack import (
    MINI,
    TINY,
    Proc,
    create_key,
    free_port,
    job_logs,
    start_redis,
    wait_http,
    wait_job,
)

QUEUED_JOBS = 4


def test_jobs_survive_a_redis_restart(tmp_path: Path, elmo_cmd: list[str]) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "ELMO_HOME": str(tmp_path / "home"),
        "ELMO_DATABASE_URL": f"sqlite:///{tmp_path / 'elmo.db'}",
        "ELMO_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ELMO_JOB_LEASE_SECONDS": "20",
        "ELMO_RECONCILE_INTERVAL_SECONDS": "1",
        "ELMO_REQUEUE_QUEUED_AFTER_SECONDS": "3",
    }
    archive = tmp_path / "mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(MINI, arcname="debian-deps-mini")
    with ExitStack() as stack:
        redis = start_redis(redis_port, tmp_path / "redis1.log")
        stack.callback(lambda: redis.stop())
        api = Proc([*elmo_cmd, "api", "--port", str(api_port)], env, tmp_path / "api.log")
        stack.callback(api.stop)
        wait_http(f"http://127.0.0.1:{api_port}/readyz", [api])
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {create_key(elmo_cmd, env, 'rita')}"},
            timeout=60,
        )
        stack.callback(client.close)
        with archive.open("rb") as fh:
            dataset = client.post("/v1/datasets", files={"file": (archive.name, fh)}).json()
        workers = [_worker(elmo_cmd, env, tmp_path, "w1")]
        stack.callback(lambda: [w.stop() for w in workers])
        jobs = []
        for i in range(1 + QUEUED_JOBS):  # job 0 keeps the only worker busy; the rest queue up
            config = {**TINY, "epochs": 20 if i == 0 else 2, "seed": i}
            response = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": config})
            assert response.status_code == 202, response.text
            jobs.append(response.json()["id"])
        running = wait_job(client, f"/v1/jobs/{jobs[0]}", until=("running",), timeout=120)
        assert running["state"] == "running"
        assert all(client.get(f"/v1/jobs/{j}").json()["state"] == "queued" for j in jobs[1:])

        os.killpg(redis.popen.pid, signal.SIGKILL)  # every queued message is gone
        redis.popen.wait()
        redis.stop()
        assert client.get("/readyz").status_code == 503  # the API sees the broker down
        # A job submitted while the broker is down is still accepted: the database row is the job.
        config = {**TINY, "epochs": 2, "seed": 99}
        response = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": config})
        assert response.status_code == 202 and response.json()["state"] == "queued", response.text
        jobs.append(response.json()["id"])
        redis = start_redis(redis_port, tmp_path / "redis2.log")  # same port, empty
        workers.append(_worker(elmo_cmd, env, tmp_path, "w2"))

        finals = [wait_job(client, f"/v1/jobs/{j}", timeout=300) for j in jobs]
        for job_id, final in zip(jobs, finals, strict=True):
            logs = job_logs(client, job_id)
            assert final["state"] == "succeeded", (final, logs)
            # Claimed once: one attempt, one start, one success, never re-queued.
            assert final["attempt"] == 1, (final, logs)
            assert sum(m.startswith("attempt ") for m in logs) == 1, logs
            assert sum(m.startswith("succeeded") for m in logs) == 1, logs
            assert not any("re-queued" in m for m in logs), logs
            assert final["progress"]["epoch"] == final["progress"]["epochs"]
        reconciler = [
            line.split("resent", 1)[1]
            for w in workers
            for line in w.tail(10_000_000).splitlines()
            if "reconciler: requeued" in line
        ]
        lost = [j for j in jobs[1:] if not any(j in line for line in reconciler)]
        assert lost == [], reconciler  # each vanished message was re-sent by the reconciler
        assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def _worker(elmo_cmd: list[str], env: dict[str, str], tmp_path: Path, name: str) -> Proc:
    """An `elmo worker` process with its own Celery node name."""
    argv = [*elmo_cmd, "worker", "--hostname", f"{name}@reliability"]
    return Proc(argv, env, tmp_path / f"{name}.log")

"""A worker killed with SIGKILL mid-job: the reconciler re-queues the job, another worker resumes
it from its last checkpoint (not from scratch), it succeeds, and its final metrics are those of the
same job run without interruption. SQLite + Redis."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from e2e_stack import REDIS_URL, TINY, Proc, create_key, free_port, reachable, wait_http, wait_job


def test_killed_worker_job_resumes_from_checkpoint(
    tmp_path: Path, mini_archive: Path, elmo_cmd: list[str]
) -> None:
    if not reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not reachable")
    port = free_port()
    env = {
        **os.environ,
        "ELMO_HOME": str(tmp_path / "home"),
        "ELMO_DATABASE_URL": f"sqlite:///{tmp_path / 'elmo.db'}",
        "ELMO_BROKER_URL": REDIS_URL,
        "ELMO_QUEUE_PREFIX": f"e2e-loss-{uuid.uuid4().hex[:8]}-",
        "ELMO_JOB_LEASE_SECONDS": "8",
        "ELMO_RECONCILE_INTERVAL_SECONDS": "1",
    }
    api = Proc([*elmo_cmd, "api", "--port", str(port)], env, tmp_path / "api.log")
    first = Proc([*elmo_cmd, "worker"], env, tmp_path / "worker1.log")
    second = None
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", [api, first])
        key = create_key(elmo_cmd, env, "dana")
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        with mini_archive.open("rb") as fh:
            ds = client.post("/v1/datasets", files={"file": (mini_archive.name, fh)}).json()
        # a checkpoint at every epoch end: the kill must find one after epoch 3
        config = {**TINY, "epochs": 40, "checkpoint": {"min_interval_s": 0}}
        job = client.post("/v1/jobs", json={"dataset_id": ds["id"], "config": config}).json()
        path = f"/v1/jobs/{job['id']}"
        for _ in range(600):
            body = wait_job(client, path, until=("running",))
            if (body["progress"]["epoch"] or 0) >= 3:
                break
            time.sleep(0.3)
        assert body["state"] == "running" and body["progress"]["epoch"] >= 3
        os.killpg(first.popen.pid, signal.SIGKILL)  # no warm shutdown, no ack
        first.popen.wait()
        second = Proc([*elmo_cmd, "worker"], env, tmp_path / "worker2.log")
        final = wait_job(client, path, timeout=300)
        assert final["state"] == "succeeded", (final, second.tail())
        assert final["attempt"] == 2 and final["progress"]["epoch"] == 40
        logs = [line["message"] for line in client.get(f"{path}/logs").json()]
        assert any("lost" in m and "re-queued" in m for m in logs), logs
        assert any(m.startswith("attempt 2") and "resuming" in m for m in logs), logs
        resumed = [m for m in logs if m.startswith("resumed from")]
        assert resumed and "step 0" not in resumed[0], logs
        history = client.get(f"{path}/metrics").json()
        assert history[-1]["epoch"] == 40
        # The same job again, uninterrupted: a resumed CPU run with a fixed seed replays the same
        # batches, dropout and rounding, so its final P@1 matches to within a tenth of a point.
        again = client.post("/v1/jobs", json={"dataset_id": ds["id"], "config": config}).json()
        clean = wait_job(client, f"/v1/jobs/{again['id']}", timeout=300)
        assert clean["state"] == "succeeded" and clean["attempt"] == 1, clean
        clean_history = client.get(f"/v1/jobs/{again['id']}/metrics").json()
        assert abs(clean_history[-1]["metrics"]["P@1"] - history[-1]["metrics"]["P@1"]) <= 0.1, (
            clean_history[-1],
            history[-1],
        )
        client.close()
    finally:
        for proc in (api, first, second):
            if proc is not None:
                proc.stop()

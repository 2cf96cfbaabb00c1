"""Faults around a running job, with real `elmo api` and `elmo worker` processes over SQLite and
the embedded filesystem broker (no Redis needed):

- the API process killed (SIGKILL) mid-job and started again: the job, the dataset and the
  earlier model are intact, the job finishes, and its model predicts;
- a diverging training config: the job fails with the trainer's `TrainingDiverged` reason.
"""

from __future__ import annotations

import os
import signal
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_stack import MINI, TINY, Proc, create_key, free_port, job_logs, wait_http, wait_job


@dataclass
class FsStack:
    """An API process (replaceable), a worker and a client of owner `olga`."""

    env: dict[str, str]
    port: int
    api: Proc
    worker: Proc
    client: httpx.Client
    dataset: dict
    home: Path


def _api(elmo_cmd: list[str], env: dict[str, str], port: int, log: Path) -> Proc:
    return Proc([*elmo_cmd, "api", "--port", str(port), "--log-level", "warning"], env, log)


@pytest.fixture(scope="module")
def fs_stack(tmp_path_factory: pytest.TempPathFactory, elmo_cmd: list[str]) -> Iterator[FsStack]:
    home = tmp_path_factory.mktemp("fs-stack")
    port = free_port()
    env = {
        **os.environ,
        "ELMO_HOME": str(home / "home"),
        "ELMO_DATABASE_URL": f"sqlite:///{home / 'elmo.db'}",
        "ELMO_JOB_LEASE_SECONDS": "20",
        "ELMO_RECONCILE_INTERVAL_SECONDS": "2",
    }
    env.pop("ELMO_BROKER_URL", None)  # the embedded filesystem broker
    api = _api(elmo_cmd, env, port, home / "api1.log")
    worker = Proc([*elmo_cmd, "worker"], env, home / "worker.log")
    stack = None
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", [api, worker])
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {create_key(elmo_cmd, env, 'olga')}"},
            timeout=60,
        )
        archive = home / "mini.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(MINI, arcname="debian-deps-mini")
        with archive.open("rb") as fh:
            dataset = client.post("/v1/datasets", files={"file": (archive.name, fh)}).json()
        stack = FsStack(env, port, api, worker, client, dataset, home)
        yield stack
        client.close()
    finally:
        (stack.api if stack else api).stop()
        worker.stop()


def _predict(client: httpx.Client, model_id: str) -> list:
    response = client.post(
        f"/v1/models/{model_id}/predict",
        json={"texts": ["python library for http requests", "kernel module"], "k": 5},
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_api_restart_mid_job(fs_stack: FsStack, elmo_cmd: list[str]) -> None:
    client, ds = fs_stack.client, fs_stack.dataset
    created = client.post("/v1/jobs", json={"dataset_id": ds["id"], "config": TINY})
    assert created.status_code == 202, created.text
    first = wait_job(client, f"/v1/jobs/{created.json()['id']}")
    assert first["state"] == "succeeded", first
    before = _predict(client, first["model_id"])

    job = client.post("/v1/jobs", json={"dataset_id": ds["id"], "config": {**TINY, "epochs": 25}})
    assert job.status_code == 202, job.text
    path = f"/v1/jobs/{job.json()['id']}"
    running = wait_job(client, path, until=("running",), timeout=120)
    assert running["state"] == "running"

    os.killpg(fs_stack.api.popen.pid, signal.SIGKILL)  # no graceful shutdown
    fs_stack.api.popen.wait()
    fs_stack.api.stop()
    with pytest.raises(httpx.TransportError):
        client.get(path)
    fs_stack.api = _api(elmo_cmd, fs_stack.env, fs_stack.port, fs_stack.home / "api2.log")
    wait_http(f"http://127.0.0.1:{fs_stack.port}/readyz", [fs_stack.api, fs_stack.worker])

    again = client.get(path).json()
    assert again["state"] in ("running", "succeeded") and again["attempt"] == 1, again
    assert client.get(f"/v1/datasets/{ds['id']}").json()["stats"] == ds["stats"]
    final = wait_job(client, path, timeout=300)
    logs = job_logs(client, final["id"])
    assert final["state"] == "succeeded" and final["attempt"] == 1, (final, logs)
    assert not any("re-queued" in m for m in logs), logs
    assert final["progress"]["epoch"] == 25
    assert len(client.get(f"{path}/metrics").json()) == 25
    models = {m["id"] for m in client.get("/v1/models").json()}
    assert {first["model_id"], final["model_id"]} <= models
    assert _predict(client, first["model_id"]) == before  # the earlier model is unchanged
    assert len(_predict(client, final["model_id"])) == 2


def test_diverging_job_fails_with_the_reason(fs_stack: FsStack) -> None:
    # encoder.init_std 1e300 does not fit float32: every embedding weight starts as +-inf, so the
    # first step's loss is NaN on any machine. (An absurd learning rate is no reliable way to
    # diverge: on some machines the loss of lr 1e30 peaks near 1e36, finite in float32.)
    config = {**TINY, "epochs": 2, "encoder": {**TINY["encoder"], "init_std": 1e300}}
    job = fs_stack.client.post(
        "/v1/jobs", json={"dataset_id": fs_stack.dataset["id"], "config": config}
    )
    assert job.status_code == 202, job.text
    final = wait_job(fs_stack.client, f"/v1/jobs/{job.json()['id']}", timeout=180)
    assert final["state"] == "failed", final
    assert final["failure_reason"].startswith("TrainingDiverged: training diverged: "), final
    assert "non-finite loss" in final["failure_reason"], final
    assert final["failure_reason"].endswith(" at epoch 1, step 0"), final
    assert final["model_id"] is None
    logs = job_logs(fs_stack.client, final["id"])
    assert sum(m.startswith("attempt ") for m in logs) == 1, logs  # failed, not retried

"""Disk retention: a job that ends without a model (failed, cancelled) leaves no checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app
from worker.train_job import run_dir, run_training_job


def test_a_failed_job_leaves_no_checkpoints(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "pam")
        headers = {"Authorization": f"Bearer {token}"}
        rows = [{"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(40)]
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        ds = client.post("/v1/datasets", headers=headers, files={"file": ("d.jsonl", body)}).json()
        # checkpoints every step, then the run fails at the end of epoch 1 (an unknown metric)
        config = {
            "device": "cpu",
            "epochs": 2,
            "batch_size": 8,
            "encoder": {"dim": 8},
            "checkpoint": {"every_steps": 1},
            "eval": {"select_metric": "bogus"},
        }
        job = client.post(
            "/v1/jobs", headers=headers, json={"dataset_id": ds["id"], "config": config}
        )
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        assert run_training_job(settings, job_id, "w1") == "failed"
        final = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        assert "select_metric" in final["failure_reason"]
        assert final["progress"]["step"] >= 1  # it did train (and checkpoint) before failing
        assert not (run_dir(settings, job_id) / "checkpoints").exists()

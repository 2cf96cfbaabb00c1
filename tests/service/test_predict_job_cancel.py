"""Predict jobs can be cancelled: a queued one at once (no worker runs it), a running one is
flagged for its worker, which checks before every batch; another owner gets 404, a finished
job 409."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.jobs import lifecycle
from service.models import Model, PredictJob
from worker.predict_job import run_predict_job


def _model(settings: Settings, owner: str) -> None:
    with session_scope(settings.effective_database_url) as session:
        session.add(
            Model(
                id="mdl_c",
                owner=owner,
                job_id="job_x",
                dataset_id="ds_x",
                config={},
                num_labels=3,
                size_bytes=0,
                path="/nowhere",
            )
        )


def _submit(client: TestClient, headers: dict[str, str]) -> dict:
    files = {"file": ("t.jsonl", b'{"text": "a"}\n{"text": "b"}\n')}
    r = client.post("/v1/models/mdl_c/predict-jobs", headers=headers, files=files, data={"k": 2})
    assert r.status_code == 202, r.text
    return r.json()


def test_a_queued_predict_job_is_cancelled_and_never_runs(
    client: TestClient, settings: Settings, auth: Callable[[str], dict[str, str]]
) -> None:
    headers = auth("carol")
    _model(settings, "carol")
    job = _submit(client, headers)
    assert (
        client.post(f"/v1/predict-jobs/{job['id']}/cancel", headers=auth("dan")).status_code == 404
    )
    r = client.post(f"/v1/predict-jobs/{job['id']}/cancel", headers=headers)
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    assert run_predict_job(settings, job["id"], "w1") is None  # the worker does not claim it
    again = client.post(f"/v1/predict-jobs/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409


def test_a_running_predict_job_is_flagged_for_its_worker(
    client: TestClient, settings: Settings, auth: Callable[[str], dict[str, str]]
) -> None:
    headers = auth("erin")
    _model(settings, "erin")
    job = _submit(client, headers)
    url = settings.effective_database_url
    with session_scope(url) as session:
        attempt = lifecycle.claim(session, PredictJob, job["id"], "w1")
    assert attempt == 1
    with session_scope(url) as session:
        assert lifecycle.poll_cancel(session, job["id"], attempt, PredictJob) is False
    r = client.post(f"/v1/predict-jobs/{job['id']}/cancel", headers=headers)
    assert r.status_code == 202 and r.json()["state"] == "running"
    with session_scope(url) as session:
        assert lifecycle.poll_cancel(session, job["id"], attempt, PredictJob) is True

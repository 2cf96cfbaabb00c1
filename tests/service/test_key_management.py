"""Key management: `elmo keys list|revoke|rotate` (real processes on a real SQLite file) and the
owner's self-service /v1/keys over HTTP."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app


def _elmo(elmo_cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*elmo_cmd, "keys", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_lists_revokes_and_rotates_keys(tmp_path: Path, elmo_cmd: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELMO_")}
    env["ELMO_HOME"] = str(tmp_path / "home")
    first = _elmo(elmo_cmd, env, "create", "--name", "fay")
    other = _elmo(elmo_cmd, env, "create", "--name", "gus")
    assert first.returncode == other.returncode == 0
    listed = _elmo(elmo_cmd, env, "list").stdout.strip().splitlines()
    assert [line.split("\t")[1] for line in listed] == ["fay", "gus"]
    assert all(line.endswith("\tactive") for line in listed)
    assert first.stdout.strip() not in "\n".join(listed)  # secrets are never shown again
    fay_id = listed[0].split("\t")[0]
    rotated = _elmo(elmo_cmd, env, "rotate", fay_id)
    assert rotated.returncode == 0 and rotated.stdout.strip().startswith("elmo_")
    only_fay = _elmo(elmo_cmd, env, "list", "--name", "fay").stdout.strip().splitlines()
    assert [line.split("\t")[-1] for line in only_fay] == ["revoked", "active"]
    assert [line.split("\t")[3] for line in only_fay] == ["full", "full"]
    gus_id = listed[1].split("\t")[0]
    assert _elmo(elmo_cmd, env, "revoke", gus_id).returncode == 0
    assert _elmo(elmo_cmd, env, "revoke", "key_nope").returncode == 2
    assert _elmo(elmo_cmd, env, "rotate", gus_id).returncode == 2  # revoked: nothing to rotate
    settings = Settings(home=tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        for token, status in (
            (first.stdout.strip(), 401),
            (other.stdout.strip(), 401),
            (rotated.stdout.strip(), 200),
        ):
            r = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == status


def test_owners_manage_their_own_keys_over_http(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            hal_row, hal = create_api_key(session, "hal")
            ivy_row, ivy = create_api_key(session, "ivy")
        hal_h, ivy_h = ({"Authorization": f"Bearer {t}"} for t in (hal, ivy))
        created = client.post("/v1/keys", headers=hal_h)
        assert created.status_code == 201
        new = created.json()
        assert new["token"].startswith(new["prefix"])
        keys = client.get("/v1/keys", headers=hal_h).json()
        assert [k["key_id"] for k in keys] == [hal_row.id, new["key_id"]]
        assert all("token" not in k for k in keys)
        assert client.delete(f"/v1/keys/{ivy_row.id}", headers=hal_h).status_code == 404
        assert client.delete(f"/v1/keys/{hal_row.id}", headers=hal_h).status_code == 204
        assert client.get("/v1/me", headers=hal_h).status_code == 401
        new_h = {"Authorization": f"Bearer {new['token']}"}
        assert client.get("/v1/me", headers=new_h).json()["owner"] == "hal"
        assert client.get("/v1/me", headers=ivy_h).status_code == 200


def test_a_predict_key_reads_models_and_predicts_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, full = create_api_key(session, "quinn")
        full_h = {"Authorization": f"Bearer {full}"}
        made = client.post("/v1/keys", headers=full_h, json={"scope": "predict"}).json()
        assert made["scope"] == "predict"
        predict_h = {"Authorization": f"Bearer {made['token']}"}
        assert client.get("/v1/me", headers=predict_h).json()["scope"] == "predict"
        assert client.get("/v1/models", headers=predict_h).status_code == 200
        assert client.get("/v1/predict-jobs", headers=predict_h).status_code == 200
        assert client.get("/v1/models/mdl_none", headers=predict_h).status_code == 404
        rows = b'{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["y"]}\n'
        refused = [
            client.get("/v1/datasets", headers=predict_h),
            client.post("/v1/datasets", headers=predict_h, files={"file": ("d.jsonl", rows)}),
            client.post("/v1/jobs", headers=predict_h, json={"dataset_id": "ds_x"}),
            client.get("/v1/jobs", headers=predict_h),
            client.post("/v1/keys", headers=predict_h),
            client.get("/v1/keys", headers=predict_h),
            client.delete("/v1/models/mdl_none", headers=predict_h),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        assert "scope is 'predict'" in refused[0].json()["detail"]
        assert client.get("/v1/datasets", headers=full_h).json() == []  # nothing was stored
        bad = client.post("/v1/keys", headers=full_h, json={"scope": "admin"})
        assert bad.status_code == 422

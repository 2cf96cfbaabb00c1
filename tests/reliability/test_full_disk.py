"""A full disk fails the write cleanly and corrupts nothing stored (issue 16, item 9).

Real `elmo api` and `elmo worker` processes over SQLite and the embedded filesystem broker (both
kept in ELMO_HOME, off the small disk); ELMO_HOME/artifacts - datasets, runs, models, predict
jobs - is a 32 MiB tmpfs mounted for the module (root only: skipped where mounting is not
permitted) and always unmounted afterwards. A dataset and a model are stored first; then a filler
file leaves only a little space, and:

- an upload that does not fit (the archive itself, or its unpacked files) is a 507 problem+json,
  leaves nothing behind, and every stored file is byte-identical;
- a training job whose model save runs out of space fails with a reason that says the disk is
  full; no model is registered and no model folder (whole or half-written) is left; the earlier
  model's files are byte-identical and it loads and predicts as before; once space is freed the
  same job succeeds;
- a predict job whose results do not fit fails the same way, without a half-written results file;
- `save_model` over an existing model folder, on a full disk: an `OSError` (ENOSPC), and the
  folder is as it was, with no temporary folder left.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_stack import MINI, TINY, Proc, create_key, free_port, job_logs, wait_http, wait_job

DISK_MIB = 32
TEXTS = ["python library for http requests", "kernel module for wifi", "fonts"]
FILLER = "filler.bin"
PROBLEM_JSON = "application/problem+json"


@dataclass
class FullDiskStack:
    """The processes, a client of owner `fay`, and what was stored before the disk filled up."""

    home: Path
    artifacts: Path
    client: httpx.Client
    archive: bytes
    dataset: dict
    model: dict
    predictions: list


def _mount_tmpfs(path: Path, size_mib: int) -> None:
    """Mount a tmpfs of `size_mib` MiB at `path`, or skip the module saying why it cannot."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount are not installed")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "elmo-full-disk", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")


def _unmount(path: Path) -> None:
    """Unmount `path`; lazily if something still holds it open."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _mini_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(MINI, arcname="debian-deps-mini")
    return buffer.getvalue()


def _predict(client: httpx.Client, model_id: str) -> list:
    response = client.post(f"/v1/models/{model_id}/predict", json={"texts": TEXTS, "k": 5})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _stored(artifacts: Path) -> dict[str, str]:
    """Every path under the artifacts disk (the filler aside): a file's SHA-256, else 'dir'."""
    stored = {}
    for path in sorted(artifacts.rglob("*")):
        rel = str(path.relative_to(artifacts))
        if rel == FILLER:
            continue
        stored[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return stored


@contextmanager
def _disk_filled(artifacts: Path, leave: int) -> Iterator[int]:
    """Fill the disk with a file of zeros until about `leave` bytes stay free; remove it after.
    Yields the free bytes left."""
    filler = artifacts / FILLER
    remaining = shutil.disk_usage(artifacts).free - leave
    assert remaining > 0, f"the disk has less than {leave} bytes free already"
    block = bytes(1 << 20)
    try:
        with filler.open("wb") as handle:
            while remaining > 0:
                remaining -= handle.write(block[: min(remaining, len(block))])
        yield shutil.disk_usage(artifacts).free
    finally:
        filler.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory, elmo_cmd: list[str]) -> Iterator[FullDiskStack]:
    home = tmp_path_factory.mktemp("full-disk")
    artifacts = home / "artifacts"
    artifacts.mkdir()
    _mount_tmpfs(artifacts, DISK_MIB)
    procs: list[Proc] = []
    try:
        env = {
            **os.environ,
            "ELMO_HOME": str(home),
            "ELMO_DATABASE_URL": f"sqlite:///{home / 'elmo.db'}",
            "ELMO_JOB_LEASE_SECONDS": "20",
            "ELMO_RECONCILE_INTERVAL_SECONDS": "2",
        }
        env.pop("ELMO_BROKER_URL", None)  # the embedded filesystem broker, in ELMO_HOME/broker
        env.pop("ELMO_ARTIFACTS_DIR", None)
        port = free_port()
        argv = [*elmo_cmd, "api", "--port", str(port), "--log-level", "warning"]
        procs.append(Proc(argv, env, home / "api.log"))
        procs.append(Proc([*elmo_cmd, "worker"], env, home / "worker.log"))
        wait_http(f"http://127.0.0.1:{port}/readyz", procs)
        token = create_key(elmo_cmd, env, "fay")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as client:
            archive = _mini_archive()
            created = client.post("/v1/datasets", files={"file": ("mini.tar.gz", archive)})
            assert created.status_code == 201, created.text
            dataset = created.json()
            job = client.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": TINY})
            assert job.status_code == 202, job.text
            final = wait_job(client, f"/v1/jobs/{job.json()['id']}")
            assert final["state"] == "succeeded", final
            model = client.get(f"/v1/models/{final['model_id']}").json()
            predictions = _predict(client, model["id"])
            yield FullDiskStack(home, artifacts, client, archive, dataset, model, predictions)
    finally:
        for proc in procs:
            proc.stop()
        _unmount(artifacts)


@pytest.mark.parametrize(
    ("case", "leave"),
    [("the archive does not fit", 256 << 10), ("its unpacked files do not fit", 1536 << 10)],
)
def test_an_upload_that_does_not_fit_is_a_507_and_stores_nothing(
    disk: FullDiskStack, case: str, leave: int
) -> None:
    assert (leave > len(disk.archive)) == (case == "its unpacked files do not fit")
    assert leave < disk.dataset["size_bytes"]
    datasets = disk.client.get("/v1/datasets").json()
    stored = _stored(disk.artifacts)
    with _disk_filled(disk.artifacts, leave):
        response = disk.client.post("/v1/datasets", files={"file": ("mini.tar.gz", disk.archive)})
        assert response.status_code == 507, (case, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["type"] == "urn:elmo:problem:insufficient-storage", body
        assert "disk is full" in body["detail"] and "nothing was stored" in body["detail"], body
        assert str(disk.home) not in response.text  # no server path in the answer
        assert disk.client.get("/v1/datasets").json() == datasets
        assert _stored(disk.artifacts) == stored  # nothing half-written left, nothing changed
    again = disk.client.post("/v1/datasets", files={"file": ("mini.tar.gz", disk.archive)})
    assert again.status_code == 201, again.text  # space freed: the same upload is fine
    assert again.json()["stats"] == disk.dataset["stats"]
    assert disk.client.delete(f"/v1/datasets/{again.json()['id']}").status_code == 204
    assert disk.client.get(f"/v1/datasets/{disk.dataset['id']}").json() == disk.dataset


def test_a_model_save_on_a_full_disk_fails_the_job_and_keeps_the_earlier_model(
    disk: FullDiskStack,
) -> None:
    from elmo_core.inference import Predictor

    client, artifacts = disk.client, disk.artifacts
    earlier_dir = artifacts / "models" / disk.model["id"]
    local_before = Predictor.load(earlier_dir).predict(TEXTS, k=5)
    models = client.get("/v1/models").json()
    stored = _stored(artifacts)
    # the run writes a few KiB of JSON before the model (~10 MiB) is saved: 3 MiB is enough
    # for those, not for the model
    assert disk.model["size_bytes"] > 2 * (3 << 20)
    with _disk_filled(artifacts, 3 << 20):
        job = client.post("/v1/jobs", json={"dataset_id": disk.dataset["id"], "config": TINY})
        assert job.status_code == 202, job.text
        final = wait_job(client, f"/v1/jobs/{job.json()['id']}")
    logs = job_logs(client, final["id"])
    assert final["state"] == "failed", (final, logs)
    assert final["failure_reason"].startswith("disk full: no space left on device"), final
    assert str(disk.home) not in final["failure_reason"]  # no server path
    assert final["model_id"] is None
    assert sum(m.startswith("attempt ") for m in logs) == 1, logs  # failed, not retried
    assert any(m.startswith("evaluating validation") for m in logs), logs  # it got to the save
    # the model is written beside the next epoch; its failure ends the run, which never finishes
    assert not any(m.startswith("model written") for m in logs), logs

    assert client.get("/v1/models").json() == models  # nothing registered
    run = artifacts / "runs" / final["id"]
    leftovers = {"model", ".model.tmp", ".model.old", "checkpoints"}
    assert not leftovers & {p.name for p in run.iterdir()}  # no model folder, whole or half
    assert sorted(p.name for p in (artifacts / "models").iterdir()) == [disk.model["id"]]
    after = {k: v for k, v in _stored(artifacts).items() if not k.startswith(f"runs/{final['id']}")}
    assert after == stored  # the earlier model and dataset are byte-identical
    assert Predictor.load(earlier_dir).predict(TEXTS, k=5) == local_before
    assert _predict(client, disk.model["id"]) == disk.predictions

    retry = client.post("/v1/jobs", json={"dataset_id": disk.dataset["id"], "config": TINY})
    done = wait_job(client, f"/v1/jobs/{retry.json()['id']}")
    assert done["state"] == "succeeded", done  # space freed: the same job trains
    assert len(_predict(client, done["model_id"])) == len(TEXTS)
    assert client.delete(f"/v1/models/{done['model_id']}").status_code == 204


def test_predict_job_results_that_do_not_fit_fail_the_job_cleanly(disk: FullDiskStack) -> None:
    client, artifacts = disk.client, disk.artifacts
    texts = "".join(f"{TEXTS[i % len(TEXTS)]} {i}\n" for i in range(300)).encode()
    stored = _stored(artifacts)
    with _disk_filled(artifacts, 256 << 10):  # 300 texts x 1,000 labels: megabytes of results
        created = client.post(
            f"/v1/models/{disk.model['id']}/predict-jobs",
            files={"file": ("texts.txt", texts)},
            data={"k": "1000"},
        )
        assert created.status_code == 202, created.text
        final = wait_job(client, f"/v1/predict-jobs/{created.json()['id']}")
    assert final["state"] == "failed", final
    assert final["failure_reason"].startswith("disk full: no space left on device"), final
    folder = artifacts / "predict-jobs" / final["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["input.jsonl"]  # no partial results
    results = client.get(f"/v1/predict-jobs/{final['id']}/results")
    assert results.status_code == 409, results.text
    after = {k: v for k, v in _stored(artifacts).items() if not k.startswith("predict-jobs")}
    assert after == {k: v for k, v in stored.items() if not k.startswith("predict-jobs")}
    assert _predict(client, disk.model["id"]) == disk.predictions


def test_a_predict_job_whose_input_does_not_fit_is_a_507_and_leaves_no_folder(
    disk: FullDiskStack,
) -> None:
    """The upload fits its scratch copy, but the stored input (JSON escapes 'é' into 6 bytes,
    3x the upload) does not: 507, and no half-written predict-job folder stays behind."""
    client, artifacts = disk.client, disk.artifacts
    texts = "".join("é" * 500 + f" {i}\n" for i in range(200)).encode()  # ~200 KB
    before = sorted((artifacts / "predict-jobs").glob("*"))
    with _disk_filled(artifacts, 320 << 10):
        r = client.post(
            f"/v1/models/{disk.model['id']}/predict-jobs",
            files={"file": ("texts.txt", texts)},
            data={"k": "5"},
        )
    assert r.status_code == 507, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert str(disk.home) not in r.text
    assert sorted((artifacts / "predict-jobs").glob("*")) == before


def test_save_model_over_an_existing_model_on_a_full_disk_leaves_it_as_it_was(
    disk: FullDiskStack,
) -> None:
    from elmo_core.model.artifact import load_model, save_model

    loaded = load_model(disk.artifacts / "models" / disk.model["id"])
    parts = {
        "config": loaded.config,
        "encoder": loaded.encoder,
        "head": loaded.head,
        "label_texts": loaded.label_texts,
        "fusion": loaded.fusion,
        "metrics": loaded.metrics,
    }
    target = disk.artifacts / "resave" / "model"
    try:
        save_model(target, **parts)
        stored = _stored(disk.artifacts / "resave")
        with _disk_filled(disk.artifacts, 3 << 20), pytest.raises(OSError) as raised:
            save_model(target, **parts, telemetry={"again": True})
        assert raised.value.errno == errno.ENOSPC  # safetensors' error, as the OSError it wraps
        assert _stored(disk.artifacts / "resave") == stored  # no .model.tmp, the old one intact
        assert load_model(target).label_texts == loaded.label_texts
    finally:
        shutil.rmtree(disk.artifacts / "resave")

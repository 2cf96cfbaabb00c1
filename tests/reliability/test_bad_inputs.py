"""A corpus of bad uploads and requests against the API (TestClient over a real SQLite store and
the real worker code): each gets a 4xx problem+json whose detail names the problem, and after each
one everything stored before is still listed and intact — the dataset's statistics, the finished
job, the model's record, its predictions, and the artifacts on disk (no partial uploads left)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from upload_helpers import mini_files, tar_gz

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app
from worker.train_job import run_training_job

MAX_UPLOAD = 4 << 20
TEXTS = ["python library for http requests", "kernel module for wifi", "fonts"]
TINY = {
    "device": "cpu",
    "epochs": 1,
    "batch_size": 64,
    "threads": 1,
    "encoder": {"dim": 32},
    "data": {"max_train_points": 300, "max_test_points": 50},
}


@dataclass
class Ctx:
    """The app, a key's headers, and what was stored before the bad requests."""

    client: TestClient
    headers: dict[str, str]
    settings: Settings
    dataset: dict
    job: dict
    model: dict
    predictions: list
    artifacts: set[str] = field(default_factory=set)
    before: dict = field(default_factory=dict)


def _artifacts(settings: Settings) -> set[str]:
    root = settings.effective_artifacts_dir
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _snapshot(ctx: Ctx) -> dict:
    c, h = ctx.client, ctx.headers
    return {
        "datasets": c.get("/v1/datasets", headers=h).json(),
        "dataset": c.get(f"/v1/datasets/{ctx.dataset['id']}", headers=h).json(),
        "jobs": [j["id"] for j in c.get("/v1/jobs", headers=h).json()],
        "job": c.get(f"/v1/jobs/{ctx.job['id']}", headers=h).json(),
        "models": c.get("/v1/models", headers=h).json(),
        "predictions": _predict(c, h, ctx.model["id"]),
    }


def _predict(client: TestClient, headers: dict[str, str], model_id: str) -> list:
    r = client.post(f"/v1/models/{model_id}/predict", headers=headers, json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    home = tmp_path_factory.mktemp("bad-inputs")
    settings = Settings(
        home=home,
        worker_gpu_memory_gib=4.0,
        max_upload_bytes=MAX_UPLOAD,
        max_extracted_bytes=64 << 20,
    )
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "vera")
        headers = {"Authorization": f"Bearer {token}"}
        archive = tar_gz(mini_files(), prefix="mini/")
        r = client.post("/v1/datasets", headers=headers, files={"file": ("mini.tar.gz", archive)})
        assert r.status_code == 201, r.text
        dataset = r.json()
        r = client.post(
            "/v1/jobs", headers=headers, json={"dataset_id": dataset["id"], "config": TINY}
        )
        assert r.status_code == 202, r.text
        assert run_training_job(settings, r.json()["id"], "in-test") == "succeeded"
        job = client.get(f"/v1/jobs/{r.json()['id']}", headers=headers).json()
        model = client.get(f"/v1/models/{job['model_id']}", headers=headers).json()
        predictions = _predict(client, headers, model["id"])
        ctx_ = Ctx(client, headers, settings, dataset, job, model, predictions)
        ctx_.artifacts = _artifacts(settings)
        ctx_.before = _snapshot(ctx_)
        assert ctx_.before["predictions"] == predictions  # predictions are deterministic
        yield ctx_


# -- payloads -------------------------------------------------------------------------------------


def _mini_with(**replace: bytes) -> bytes:
    files = {**mini_files(), **{k.replace("__", "."): v for k, v in replace.items()}}
    return tar_gz(files, prefix="mini/")


def _xy_lines() -> list[bytes]:
    return mini_files()["trn_X_Y.txt"].split(b"\n")


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("mini/trn_X.txt")
        info.size = 40 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


def _latin1_tar() -> bytes:
    """A tar whose member name is Latin-1, not UTF-8 (reads back with a lone surrogate)."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w:gz", encoding="latin-1", format=tarfile.GNU_FORMAT
    ) as tar:
        data = b"x\n"
        info = tarfile.TarInfo("mini/caf\xe9.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _named(kind: str, name: str) -> Callable[[Ctx], httpx.Response]:
    def send(ctx: Ctx) -> httpx.Response:
        if kind == "job":
            body = {"dataset_id": ctx.dataset["id"], "config": TINY, "name": name}
            return ctx.client.post("/v1/jobs", headers=ctx.headers, json=body)
        files = {"file": ("d.tar.gz", tar_gz(mini_files(), prefix="mini/"))}
        return ctx.client.post(
            "/v1/datasets", headers=ctx.headers, files=files, data={"name": name}
        )

    return send


def _upload(name: str, payload: bytes | Callable[[], bytes]) -> Callable[[Ctx], httpx.Response]:
    def send(ctx: Ctx) -> httpx.Response:
        data = payload() if callable(payload) else payload
        return ctx.client.post("/v1/datasets", headers=ctx.headers, files={"file": (name, data)})

    return send


def _predict_body(body: dict) -> Callable[[Ctx], httpx.Response]:
    def send(ctx: Ctx) -> httpx.Response:
        return ctx.client.post(
            f"/v1/models/{ctx.model['id']}/predict", headers=ctx.headers, json=body
        )

    return send


def _predict_job(name: str, payload: bytes, k: str = "5") -> Callable[[Ctx], httpx.Response]:
    def send(ctx: Ctx) -> httpx.Response:
        return ctx.client.post(
            f"/v1/models/{ctx.model['id']}/predict-jobs",
            headers=ctx.headers,
            files={"file": (name, payload)},
            data={"k": k},
        )

    return send


def _train(config: dict, dataset_id: str | None = None) -> Callable[[Ctx], httpx.Response]:
    def send(ctx: Ctx) -> httpx.Response:
        body = {"dataset_id": dataset_id or ctx.dataset["id"], "config": config}
        return ctx.client.post("/v1/jobs", headers=ctx.headers, json=body)

    return send


def _raw(method: str, path: str, content: bytes, content_type: str):
    def send(ctx: Ctx) -> httpx.Response:
        path_ = path.replace("{model}", ctx.model["id"])
        headers = {**ctx.headers, "Content-Type": content_type}
        return ctx.client.request(method, path_, headers=headers, content=content)

    return send


# (id, request, status, problem type, text the detail must contain)
CASES = [
    (
        "oversize-upload",
        _upload("big.tar.gz", bytes(MAX_UPLOAD + 1)),
        413,
        "too-large",
        f"exceeds the limit of {MAX_UPLOAD} bytes",
    ),
    (
        "tar-dotdot-member",
        _upload("a.tar.gz", tar_gz({"../evil.txt": b"x"})),
        422,
        "unsafe-archive",
        "'../evil.txt': '..' in a path is not allowed",
    ),
    (
        "tar-absolute-member",
        _upload("a.tar.gz", tar_gz({"/tmp/evil": b"x"})),
        422,
        "unsafe-archive",
        "'/tmp/evil': absolute paths are not allowed",
    ),
    (
        "zip-dotdot-member",
        _upload("a.zip", _zip({"d/../../evil": b"x"})),
        422,
        "unsafe-archive",
        "'..' in a path is not allowed",
    ),
    (
        "decompression-bomb",
        _upload("bomb.tar.gz", _bomb),
        422,
        "unsafe-archive",
        "decompression bomb",
    ),
    (
        "empty-archive",
        _upload("empty.tar.gz", tar_gz({})),
        422,
        "unsafe-archive",
        "the archive is empty",
    ),
    (
        "binary-garbage-archive",
        _upload("junk.tar.gz", bytes(range(256)) * 64),
        422,
        "unsafe-archive",
        "cannot read the archive",
    ),
    (
        "gzip-of-garbage",
        _upload("junk.tgz", gzip.compress(bytes(range(256)) * 64)),
        422,
        "unsafe-archive",
        "cannot read the archive",
    ),
    (
        "non-utf8-text",
        _upload(
            "m.tar.gz",
            lambda: _mini_with(
                trn_X__txt=b"\xff\xfe bad\n" + mini_files()["trn_X.txt"].split(b"\n", 1)[1]
            ),
        ),
        422,
        "dataset-format",
        "mini/trn_X.txt:1: not valid UTF-8",
    ),
    (
        "jsonl-garbage",
        _upload("d.jsonl", b"\x00\x01{not json\n"),
        422,
        "dataset-format",
        "d.jsonl:1: invalid JSON",
    ),
    (
        "wrong-header-count",
        _upload(
            "m.tar.gz",
            lambda: _mini_with(trn_X_Y__txt=b"\n".join([b"3001 8779", *_xy_lines()[1:]])),
        ),
        422,
        "dataset-format",
        "mini/trn_X_Y.txt:1: header says 3001 rows but the file has 3000",
    ),
    (
        "texts-fewer-than-labels",
        _upload(
            "m.tar.gz", lambda: _mini_with(trn_X__txt=mini_files()["trn_X.txt"].rsplit(b"\n", 3)[0])
        ),
        422,
        "dataset-format",
        "has 2998 lines but trn_X_Y.txt has 3000 points",
    ),
    (
        "label-id-out-of-range",
        _upload(
            "m.tar.gz",
            lambda: _mini_with(
                trn_X_Y__txt=b"\n".join([_xy_lines()[0], b"99999:1.0", *_xy_lines()[2:]])
            ),
        ),
        422,
        "dataset-format",
        "mini/trn_X_Y.txt:2: label id 99999 out of range: must be < 8779",
    ),
    (
        "wrong-file-type",
        _upload("notes.pdf", b"%PDF-1.4\n"),
        415,
        "unsupported-media-type",
        "unsupported file 'notes.pdf'",
    ),
    (
        "not-multipart",
        _raw("POST", "/v1/datasets", b"hello", "text/plain"),
        422,
        "validation",
        "body.file",
    ),
    ("predict-k-zero", _predict_body({"texts": ["x"], "k": 0}), 422, "validation", "body.k"),
    ("predict-k-negative", _predict_body({"texts": ["x"], "k": -3}), 422, "validation", "body.k"),
    (
        "predict-k-huge",
        _predict_body({"texts": ["x"], "k": 10**9}),
        422,
        "unprocessable",
        "k=1000000000 is above the limit of 1000",
    ),
    (
        "predict-huge-text",
        _predict_body({"texts": ["a" * 200_000]}),
        413,
        "too-large",
        "a text of 200000 characters; the limit is 100000",
    ),
    (
        "predict-too-many-texts",
        _predict_body({"texts": ["x"] * 300}),
        413,
        "too-large",
        "300 texts in one request; the limit is 256",
    ),
    ("predict-no-texts", _predict_body({"texts": []}), 422, "validation", "body.texts"),
    (
        "predict-exclude-wrong-length",
        _predict_body({"texts": ["x", "y"], "exclude_label_ids": [[1]]}),
        422,
        "unprocessable",
        "exclude has 1 lists for 2 texts",
    ),
    (
        "predict-exclude-out-of-range",
        _predict_body({"texts": ["x"], "exclude_label_ids": [[10**6]]}),
        422,
        "unprocessable",
        "label id 1000000 is out of range",
    ),
    (
        "predict-exclude-too-many",
        _predict_body({"texts": ["x"], "exclude_label_ids": [list(range(1001))]}),
        422,
        "unprocessable",
        "1001 ids for one text; the limit is 1000",
    ),
    (
        "predict-malformed-json",
        _raw("POST", "/v1/models/{model}/predict", b"{bad", "application/json"),
        422,
        "validation",
        "JSON decode error",
    ),
    (
        "predict-job-huge-line",
        _predict_job("t.jsonl", b'"' + b"a" * 200_000 + b'"\n'),
        422,
        "dataset-format",
        "t.jsonl:1: text of 200000 characters (limit 100000)",
    ),
    (
        "predict-job-non-utf8",
        _predict_job("t.txt", b"ok\n\xff\xfe\n"),
        422,
        "dataset-format",
        "t.txt:2: not UTF-8",
    ),
    (
        "predict-job-wrong-type",
        _predict_job("t.exe", b"MZ"),
        415,
        "unsupported-media-type",
        "unsupported file 't.exe'",
    ),
    ("predict-job-k-zero", _predict_job("t.jsonl", b'"x"\n', k="0"), 422, "validation", "body.k"),
    (
        "predict-job-too-many-texts",
        _predict_job("t.txt", b"x\n" * 1_000_001),
        413,
        "too-large",
        "more than 1000000 texts in one predict job (line 1000001)",
    ),
    (
        "unknown-model",
        lambda ctx: ctx.client.post(
            "/v1/models/mdl_nope/predict", headers=ctx.headers, json={"texts": ["x"]}
        ),
        404,
        "not-found",
        "model 'mdl_nope' not found",
    ),
    ("unknown-dataset", _train(TINY, "ds_nope"), 404, "not-found", "dataset 'ds_nope' not found"),
    (
        "unknown-job",
        lambda ctx: ctx.client.get("/v1/jobs/job_nope", headers=ctx.headers),
        404,
        "not-found",
        "job 'job_nope' not found",
    ),
    ("config-epochs-negative", _train({**TINY, "epochs": -1}), 422, "validation", "config.epochs"),
    ("config-unknown-key", _train({**TINY, "bogus": 1}), 422, "validation", "config.bogus"),
    (
        "config-bad-precision",
        _train({**TINY, "precision": "fp3"}),
        422,
        "validation",
        "config.precision",
    ),
    (
        "unknown-encoder",
        _train({**TINY, "encoder": {"name": "hf:/nonexistent"}}),
        422,
        "unprocessable",
        "hf: encoders are not enabled on this server",
    ),
    (
        "archive-1200-levels-deep",
        _upload("deep.zip", _zip({"a/" * 1200 + "f.txt": b"x"})),
        422,
        "unsafe-archive",
        "deeper than 32 levels",
    ),
    (
        "archive-member-name-not-utf8",
        _upload("latin.tar.gz", _latin1_tar),
        422,
        "unsafe-archive",
        "the name is not valid UTF-8",
    ),
    ("job-name-with-nul", _named("job", "a\x00b"), 422, "validation", "body.name"),
    (
        "job-body-duplicate-key",
        _raw("POST", "/v1/jobs", b'{"dataset_id": "a", "dataset_id": "b"}', "application/json"),
        422,
        "validation",
        "repeats the key 'dataset_id'",
    ),
    (
        "job-config-duplicate-key",
        _raw(
            "POST",
            "/v1/jobs",
            b'{"dataset_id": "a", "config": {"epochs": 1, "epochs": 500}}',
            "application/json",
        ),
        422,
        "validation",
        "repeats the key 'epochs'",
    ),
    ("dataset-name-with-control", _named("dataset", "x\x1by"), 422, "validation", "name"),
    (
        "predict-too-many-characters",
        _predict_body({"texts": ["word " * 1000] * 250}),
        413,
        "too-large",
        "1250000 characters in one request; the limit is 1000000",
    ),
]


@pytest.mark.parametrize(
    ("request_", "status", "problem", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_and_nothing_is_lost(
    ctx: Ctx, request_, status: int, problem: str, detail: str
) -> None:
    response = request_(ctx)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:elmo:problem:{problem}", body
    assert detail in body["detail"], body
    assert str(ctx.settings.home) not in response.text  # server paths never leak
    assert _snapshot(ctx) == ctx.before
    assert _artifacts(ctx.settings) == ctx.artifacts  # nothing half-written was left behind
    assert not Path("/tmp/evil").exists()


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15 and len({c[0] for c in CASES}) == len(CASES)


def test_plan_with_an_absurd_gpu_size_is_a_4xx(ctx: Ctx) -> None:
    body = {"dataset_id": ctx.dataset["id"], "config": TINY, "gpu_memory_gib": 8.0e307}
    response = ctx.client.post("/v1/plan", headers=ctx.headers, json=body)
    assert response.status_code == 422, response.text
    assert _snapshot(ctx) == ctx.before


def test_predict_past_the_concurrency_limit_gets_429_with_retry_after(ctx: Ctx) -> None:
    slots = ctx.client.app.state.predict_slots
    taken = 0
    while slots.acquire(blocking=False):  # every slot busy, as under max_concurrent_predicts calls
        taken += 1
    try:
        assert taken == ctx.settings.max_concurrent_predicts
        url = f"/v1/models/{ctx.model['id']}/predict"
        response = ctx.client.post(url, headers=ctx.headers, json={"texts": TEXTS})
        assert response.status_code == 429 and response.headers["Retry-After"] == "1"
        assert response.json()["type"] == "urn:elmo:problem:too-many-requests"
    finally:
        for _ in range(taken):
            slots.release()
    assert _predict(ctx.client, ctx.headers, ctx.model["id"]) == ctx.predictions

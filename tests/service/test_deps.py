"""The request-scoped database session commits before the response leaves."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app


def test_a_created_dataset_is_committed_before_its_201_is_sent(settings: Settings) -> None:
    """With FastAPI's default ("request") scope the commit runs after the response is sent: a
    client that uses a resource right after its 201 can miss it (seen in CI: a job posted right
    after its dataset's 201 got 404 "dataset not found"). Here the app's ASGI `send` is watched:
    when the 201's status line goes out, another database connection must already see the row."""
    app = create_app(settings)
    url = settings.effective_database_url
    reader = sa.create_engine(url)  # its own connections: sees committed rows only
    seen: list[tuple[int, int]] = []

    def committed_datasets() -> int:
        with reader.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM datasets")).scalar_one()

    async def watched(scope, receive, send):
        async def send_and_look(message):
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                seen.append((message["status"], committed_datasets()))
            await send(message)

        await app(scope, receive, send_and_look if scope["type"] == "http" else send)

    rows = [{"text": f"text {i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(10)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    try:
        with TestClient(watched) as client:
            with session_scope(url) as session:
                _, token = create_api_key(session, "alice")
            headers = {"Authorization": f"Bearer {token}"}
            r = client.post("/v1/datasets", headers=headers, files={"file": ("t.jsonl", body)})
            assert r.status_code == 201, r.text
            assert committed_datasets() == 1
    finally:
        reader.dispose()
    assert seen == [(201, 1)], "the 201 was sent before its dataset was committed"


def test_an_unknown_broker_scheme_is_refused_when_the_settings_load(tmp_path) -> None:
    import pydantic
    import pytest

    from service.core.config import Settings

    with pytest.raises(pydantic.ValidationError, match="unknown broker scheme 'foo'"):
        Settings(home=tmp_path, broker_url="foo://localhost")
    assert Settings(home=tmp_path, broker_url="redis://127.0.0.1:6379/0").broker_url

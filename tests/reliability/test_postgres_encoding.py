"""The API on a PostgreSQL database whose server encoding is not UTF-8 (SQL_ASCII): it starts, and
non-ASCII text round-trips. Before the client encoding was pinned, the app failed at start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_stack import postgres_database, reachable
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app

SQL_ASCII = "ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"


@pytest.fixture
def ascii_database() -> Iterator[str]:
    """A fresh SQL_ASCII database (dropped afterwards); its SQLAlchemy URL."""
    pytest.importorskip("psycopg")
    if not reachable("127.0.0.1", 5432):
        if os.environ.get("ELMO_E2E_REQUIRE") == "1":
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    with postgres_database(SQL_ASCII) as url:
        yield url


def test_the_api_runs_on_a_sql_ascii_database(ascii_database: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=ascii_database)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["database"] == "ok"
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "zoë")
        headers = {"Authorization": f"Bearer {token}"}
        rows = b'{"text": "caf\\u00e9 cr\\u00e8me", "labels": ["d\\u00e9j\\u00e0"]}\n' * 40
        r = client.post(
            "/v1/datasets",
            headers=headers,
            files={"file": ("d.jsonl", rows)},
            data={"name": "données-été"},
        )
        assert r.status_code == 201, r.text
        listed = client.get("/v1/datasets", headers=headers).json()
        assert [d["name"] for d in listed] == ["données-été"]

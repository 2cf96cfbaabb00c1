"""The API in-process (FastAPI TestClient) over a real SQLite file and a filesystem broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with everything under tmp_path (embedded broker, SQLite)."""
    return Settings(home=tmp_path / "home", worker_gpu_memory_gib=4.0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient of an app for `settings` (migrations run on start)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def auth(settings: Settings, client: TestClient) -> Callable[[str], dict[str, str]]:
    """auth(owner) -> Authorization headers of a fresh key of `owner`."""

    def make(owner: str) -> dict[str, str]:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, owner)
        return {"Authorization": f"Bearer {token}"}

    return make

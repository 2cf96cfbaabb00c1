"""/metrics behind the scraper's token (or an API key), with bounded label values."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.core.config import Settings
from service.core.db import session_scope
from service.core.security import create_api_key
from service.main import create_app


def test_metrics_token_is_required_when_set(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", metrics_token="scrape-secret")
    with TestClient(create_app(settings)) as client:
        with session_scope(settings.effective_database_url) as session:
            _, token = create_api_key(session, "pia")
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "scrape-secret" not in wrong.text
        user = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert user.status_code == 401  # with a token set, user keys do not read it
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200 and "elmo_jobs" in ok.text


def test_invented_methods_share_one_label(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", metrics_token="t")
    with TestClient(create_app(settings)) as client:
        for i in range(50):
            client.request(f"FOO{i}", "/healthz")
        text = client.get("/metrics", headers={"Authorization": "Bearer t"}).text
        assert "FOO" not in text
        assert 'method="OTHER",route="unmatched"' in text or 'method="OTHER"' in text

"""`elmo keys create` writes to the database `elmo serve` reads, whatever the working directory.

The default ELMO_HOME is the user's data directory, not `./.elmo`: a key created from another
directory is accepted by a server that runs with the same environment; stderr names the
database, and says when it was new (no server has used it yet).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings, default_home
from service.main import create_app

OVERRIDES = ("ELMO_HOME", "ELMO_DATABASE_URL", "XDG_DATA_HOME", "ELMO_ARTIFACTS_DIR")


def create_key(elmo_cmd: list[str], cwd: Path, env: dict[str, str], name: str):
    """Run `elmo keys create --name NAME` in `cwd`; the finished process."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [*elmo_cmd, "keys", "create", "--name", name],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_keys_from_two_directories_reach_the_server(
    tmp_path: Path, elmo_cmd: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "user"
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES} | {"HOME": str(home)}
    database = home / ".local" / "share" / "elmo" / "elmo.db"

    first = create_key(elmo_cmd, tmp_path / "a", env, "erin")
    second = create_key(elmo_cmd, tmp_path / "b", env, "erin")

    assert f"sqlite:///{database}" in first.stderr and f"sqlite:///{database}" in second.stderr
    assert "database was new" in first.stderr and "database was new" not in second.stderr
    assert not (tmp_path / "a" / ".elmo").exists() and not (tmp_path / "b" / ".elmo").exists()

    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    settings = Settings()  # what `elmo serve` reads from the same environment
    assert settings.effective_database_url == f"sqlite:///{database}"
    with TestClient(create_app(settings)) as client:
        for token in (first.stdout.strip(), second.stdout.strip()):
            me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
        assert (
            client.get("/v1/me", headers={"Authorization": "Bearer elmo_nope"}).status_code == 401
        )


def test_the_default_home_follows_xdg_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_home() == tmp_path / "data" / "elmo"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "u"))
    assert default_home() == tmp_path / "u" / ".local" / "share" / "elmo"

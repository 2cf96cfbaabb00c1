"""Migrations match the ORM; keys are stored hashed; `elmo keys create` prints a key once."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from service.core.config import Settings
from service.core.db import get_engine, session_scope
from service.core.migrate import upgrade_database
from service.core.security import lookup_key
from service.models import ApiKey, Base


def test_migrations_build_exactly_the_orm_schema(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url)
    upgrade_database(url)  # idempotent
    with get_engine(url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_keys_create_prints_a_key_stored_only_hashed(tmp_path, elmo_cmd) -> None:
    env = {**os.environ, "ELMO_HOME": str(tmp_path / "home")}
    env.pop("ELMO_DATABASE_URL", None)
    out = subprocess.run(
        [*elmo_cmd, "keys", "create", "--name", "carol"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    token = out.stdout.strip()
    assert token.startswith("elmo_") and len(token) > 40 and "\n" not in token
    assert "shown only once" in out.stderr
    settings = Settings(home=tmp_path / "home")
    with session_scope(settings.effective_database_url) as session:
        row = session.scalar(select(ApiKey))
        assert row.owner == "carol" and row.key_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (settings.home / "elmo.db").read_bytes().decode("latin-1")
        assert lookup_key(session, token).id == row.id
        row.revoked = True
    with session_scope(settings.effective_database_url) as session:
        assert lookup_key(session, token) is None


def test_docker_compose_file_validates(tmp_path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [compose, "-f", os.path.join(root, "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ELMO_POSTGRES_PASSWORD": "x"},  # the file requires it from the env
    )
    assert result.returncode == 0, result.stderr
    assert {"api", "worker", "worker-cpu", "redis", "postgres"} == set(result.stdout.split())

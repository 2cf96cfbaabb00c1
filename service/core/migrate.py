"""Run the Alembic migrations programmatically (API and workers call this on start).

Concurrent starters are serialised: a PostgreSQL advisory lock, or a file lock next to SQLite.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from service.core.db import get_engine

_ADVISORY_LOCK_ID = 0x656C6D6F  # "elmo"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations inside the installed package."""
    cfg = Config(str(Path(__file__).resolve().parent.parent / "alembic.ini"))
    cfg.set_main_option(
        "script_location", str(Path(__file__).resolve().parent.parent / "migrations")
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_database(url: str) -> None:
    """Bring the schema at `url` to the latest revision; safe to call from several processes."""
    cfg = alembic_config(url)
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        lock_path = Path(db_path + ".migrate.lock") if db_path not in ("", ":memory:") else None
        if lock_path is None:
            command.upgrade(cfg, "head")
            return
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            command.upgrade(cfg, "head")
        return
    engine = get_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        try:
            command.upgrade(cfg, "head")
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})

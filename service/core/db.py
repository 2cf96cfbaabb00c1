"""Database engine and sessions: SQLite (default, WAL, busy timeout) or PostgreSQL by URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_makers: dict[str, sessionmaker[Session]] = {}


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        # Text is UTF-8 on the wire whatever the server's encoding: on a SQL_ASCII database
        # psycopg would otherwise hand back bytes (the API failed at start on one).
        return create_engine(url, pool_pre_ping=True, connect_args={"client_encoding": "utf8"})
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def can_be_a_key(value: str) -> bool:
    """Whether `value` can be looked up as a text key on every supported database. PostgreSQL
    refuses a NUL byte in any text parameter (an error, a 500, where SQLite finds nothing); no
    id holds one, so a lookup by such a value is skipped and finds nothing on both."""
    return "\x00" not in value


def get_engine(url: str) -> Engine:
    """One engine per URL per process; SQLite gets WAL and a busy timeout for API + workers."""
    with _lock:
        if url not in _engines:
            _engines[url] = _create_engine(url)
        return _engines[url]


def get_sessionmaker(url: str) -> sessionmaker[Session]:
    """The session factory bound to the engine of `url`."""
    engine = get_engine(url)
    with _lock:
        if url not in _makers:
            _makers[url] = sessionmaker(bind=engine, expire_on_commit=False)
        return _makers[url]


def forget_engines_after_fork() -> None:
    """In a forked child: drop the parent's pools without closing its connections.

    The lock is replaced, not taken: another thread of the parent may have held it at the fork.
    """
    global _lock
    _lock = threading.Lock()
    for engine in list(_engines.values()):
        engine.dispose(close=False)
    _engines.clear()
    _makers.clear()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error (for workers and the CLI)."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

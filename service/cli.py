"""`elmo serve`, `elmo api`, `elmo keys create`: the job service from the `elmo` command.

Registered through the `elmo.commands` entry-point group (pyproject.toml): the library's CLI
loads `register` without importing the service. Heavy service modules are imported inside the
commands, so `elmo --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from service.core.config import Settings, get_settings

keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

HostOpt = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option(help="TCP port of the API.")]
LogLevelOpt = Annotated[str, typer.Option(help="uvicorn log level.")]

WORKER_LAUNCHER = "from elmo_core.cli.main import main; main()"
"""`python -c` code that runs the `elmo` command (its `worker` verb comes from the worker)."""


def register(app: typer.Typer) -> None:
    """Add the service's commands to the `elmo` typer app (the `elmo.commands` entry point)."""
    app.command("serve")(serve)
    app.command("api")(api)
    app.add_typer(keys_app, name="keys")


def _run_api(settings: Settings, host: str, port: int, log_level: str) -> None:
    import tempfile

    import uvicorn

    from service.main import create_app

    app = create_app(settings)
    # Request bodies that spill to disk (multipart uploads, cut off at their size limit) go
    # under ELMO_HOME, on the storage the operator sized for datasets, not the host's /tmp.
    spool = settings.effective_artifacts_dir / "tmp" / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(spool)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def api(host: HostOpt = "127.0.0.1", port: PortOpt = 8000, log_level: LogLevelOpt = "info") -> None:
    """Start the REST API alone (workers run elsewhere; set ELMO_DATABASE_URL, ELMO_BROKER_URL)."""
    _run_api(get_settings(), host, port, log_level)


def serve(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8000, log_level: LogLevelOpt = "info"
) -> None:
    """Start the whole stack locally: the API plus a training and an inference worker.

    With no configuration it uses an embedded filesystem broker, a SQLite database and an
    artifacts directory under ELMO_HOME (default ~/.local/share/elmo): no Redis or PostgreSQL
    needed. The workers run quiet: no Celery banner, and their stdout (where Celery prints only
    the banner and its shutdown notices) is discarded; their logs still go to stderr.
    """
    from service.core.migrate import upgrade_database

    settings = get_settings()
    settings.ensure_dirs()
    upgrade_database(settings.effective_database_url)
    env = {**os.environ, "ELMO_RUN_MIGRATIONS": "0"}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER_LAUNCHER,
                "worker",
                "--queues",
                queue,
                "--loglevel",
                "WARNING",
                "--quiet",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        for queue in ("train", "predict")
    ]
    typer.echo(
        f"elmo: API on http://{host}:{port} (docs /docs), database "
        f"{_shown_url(settings.effective_database_url)}; create a key with "
        "`elmo keys create --name NAME` (with the same ELMO_HOME or ELMO_DATABASE_URL)",
        err=True,
    )
    # uvicorn re-raises SIGTERM after its shutdown: turn it into SystemExit so `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _run_api(settings, host, port, log_level)
    finally:
        _stop_workers(workers, grace_s=15.0)


def _stop_workers(workers: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each worker's main process (Celery's warm shutdown, which stops its own pool
    children), then SIGKILL each worker's process group if it is still there after grace_s.

    Only the main process gets the SIGTERM: signalling the whole group made the pool children
    die under the main process, which logged "Process 'ForkPoolWorker-1' ... exited with
    'signal 15 (SIGTERM)'" errors at every clean stop. A job cut short stays `running` until the
    reconciler of the next worker re-queues it (after ELMO_JOB_LEASE_SECONDS); it then resumes
    from its last checkpoint.
    """
    for proc in workers:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in workers:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Owner name; keys with one name share resources.")],
    scope: Annotated[
        str, typer.Option(help="full, or predict (read models and predict only).")
    ] = "full",
) -> None:
    """Create an API key and print it once (stdout); only its hash is stored.

    The key goes to the database of ELMO_DATABASE_URL, else ELMO_HOME's (default
    ~/.local/share/elmo, whatever the working directory): the one `elmo serve` uses with the
    same environment. stderr names that database, and says so when it had to be created, which
    means no `elmo serve` has used it yet.
    """
    from sqlalchemy.engine import make_url

    from service.core.db import session_scope
    from service.core.migrate import upgrade_database
    from service.core.security import SCOPES, create_api_key

    settings = get_settings()
    settings.ensure_dirs()
    url = settings.effective_database_url
    sqlite_file = make_url(url).database if url.startswith("sqlite") else None
    new_database = sqlite_file is not None and not os.path.exists(sqlite_file)
    if scope not in SCOPES:
        typer.echo(f"error: --scope must be one of {', '.join(SCOPES)}, got {scope!r}", err=True)
        raise typer.Exit(2)
    upgrade_database(url)
    with session_scope(url) as session:
        row, token = create_api_key(session, name.strip(), scope)
    typer.echo(
        f"created {row.scope} key {row.id} for owner {row.owner!r} in {_shown_url(url)}; "
        "it is shown only once:",
        err=True,
    )
    if new_database:
        typer.echo(
            "note: that database was new, so no `elmo serve` has used it yet: start the server "
            "with the same ELMO_HOME, or the key will be refused (401)",
            err=True,
        )
    typer.echo(token)


@keys_app.command("list")
def keys_list(
    name: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
) -> None:
    """List keys (id, owner, prefix, scope, created, active or revoked), tab-separated; secrets
    are never stored."""
    from service.core.db import session_scope
    from service.core.security import list_keys

    settings = get_settings()
    with session_scope(settings.effective_database_url) as session:
        for row in list_keys(session, name):
            state = "revoked" if row.revoked else "active"
            fields = (row.id, row.owner, f"{row.prefix}...", row.scope)
            typer.echo("\t".join((*fields, f"{row.created_at:%Y-%m-%d}", state)))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (elmo keys list).")],
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from service.core.db import session_scope
    from service.core.security import revoke_key

    settings = get_settings()
    with session_scope(settings.effective_database_url) as session:
        row = revoke_key(session, key_id)
        if row is None:
            typer.echo(
                f"error: no key {key_id!r} in {_shown_url(settings.effective_database_url)}",
                err=True,
            )
            raise typer.Exit(2)
        typer.echo(f"revoked key {row.id} of owner {row.owner!r}", err=True)


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (elmo keys list).")],
) -> None:
    """Revoke a key and print its replacement for the same owner (shown once, on stdout)."""
    from service.core.db import session_scope
    from service.core.security import rotate_key

    settings = get_settings()
    with session_scope(settings.effective_database_url) as session:
        rotated = rotate_key(session, key_id)
        if rotated is None:
            typer.echo(f"error: no active key {key_id!r}", err=True)
            raise typer.Exit(2)
        row, token = rotated
        typer.echo(f"revoked {key_id}; new key {row.id} for owner {row.owner!r}:", err=True)
    typer.echo(token)


def _shown_url(url: str) -> str:
    """A database URL fit to print: its password, if any, masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

"""Service settings from the environment (prefix `ELMO_`), in one pydantic-settings object.

With no configuration everything lives under `ELMO_HOME`: a SQLite database, an artifacts directory
and a filesystem broker, so `elmo serve` needs neither Redis nor PostgreSQL. The default home is the
user's data directory (`$XDG_DATA_HOME/elmo`, else `~/.local/share/elmo`), not the working
directory, so `elmo keys create` run from anywhere writes to the database `elmo serve` reads.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3
MIB = 1024**2


def default_home() -> Path:
    """`$XDG_DATA_HOME/elmo`, else `~/.local/share/elmo`: one home per user, whatever the cwd."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "elmo"


class Settings(BaseSettings):
    """Every knob of the API and the workers; see docs/service.md for the table."""

    model_config = SettingsConfigDict(env_prefix="ELMO_", extra="ignore", env_parse_none_str="none")

    home: Path = Field(
        default_factory=default_home,
        description="Where embedded defaults live; default $XDG_DATA_HOME/elmo or "
        "~/.local/share/elmo.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///$ELMO_HOME/elmo.db."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL (redis://...); default a filesystem broker in ELMO_HOME.",
    )
    artifacts_dir: Path | None = Field(
        default=None, description="Datasets, runs and models; default $ELMO_HOME/artifacts."
    )

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        """A broker URL whose scheme Kombu has a transport for (else a clear error at start,
        not a KeyError at the first job)."""
        if value is None:
            return value
        from kombu.transport import resolve_transport

        scheme = value.partition("://")[0]
        try:
            resolve_transport(scheme.partition("+")[0])
        except KeyError:
            raise ValueError(
                f"unknown broker scheme {scheme!r}: use redis://, rediss://, amqp:// or "
                "filesystem://"
            ) from None
        return value

    queue_prefix: str = Field(default="", description="Prefix of the queue names (isolation).")
    run_migrations: bool = Field(default=True, description="Upgrade the schema on start.")

    max_upload_bytes: int = Field(default=1 * GIB, description="Largest accepted upload.")
    max_extracted_bytes: int = Field(default=8 * GIB, description="Largest unpacked archive.")
    max_archive_members: int = Field(default=10_000, description="Most members in an archive.")
    max_compression_ratio: float = Field(
        default=200.0, description="Unpacked/packed size above which an archive is a bomb."
    )
    max_predict_texts: int = Field(default=256, description="Most texts in one predict call.")
    max_predict_k: int = Field(default=1000, description="Largest k of a predict call.")
    max_text_chars: int = Field(default=100_000, description="Longest text accepted to predict.")
    max_predict_chars: int = Field(
        default=1_000_000, description="Most characters in all the texts of one predict call."
    )
    max_predict_job_texts: int = Field(
        default=1_000_000, ge=1, description="Most texts in one predict job's file (413 past it)."
    )
    max_active_jobs_per_owner: int | None = Field(
        default=8, ge=1, description="Training jobs one owner may have queued or running (429)."
    )
    max_stored_bytes_per_owner: int | None = Field(
        default=50 * GIB,
        ge=1,
        description="Bytes of datasets and models one owner may store (429); `none`: no quota.",
    )
    max_concurrent_predicts: int = Field(
        default=4,
        ge=1,
        description="Predict calls the API process scores at once; more get 429 + Retry-After.",
    )
    model_cache_size: int = Field(default=4, description="Models kept loaded in the API process.")
    max_concurrent_dataset_validations: int = Field(
        default=2,
        ge=1,
        description="Dataset uploads the API process unpacks and validates at once (each in a "
        "child process); more get 429 + Retry-After.",
    )
    dataset_validation_memory_gib: float | None = Field(
        default=8.0,
        gt=0,
        description="Address space of the child process that parses and validates an uploaded "
        "dataset; a dataset that needs more gets 413. `none`: no cap.",
    )
    dataset_validation_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="Longest validation of an uploaded dataset; the child is killed past it (422).",
    )

    worker_gpu_memory_gib: float | None = Field(
        default=80.0,
        description="GPU memory of a training worker; jobs whose plan exceeds it are rejected. "
        "`none` disables the check.",
    )
    worker_host_memory_gib: float | None = Field(
        default=None,
        description="Host RAM of a training worker; jobs whose host plan exceeds it are "
        "rejected. Unset (the default): the plan is reported, not checked.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token of the Prometheus scraper for /metrics; unset: any API key.",
    )
    encoder_dirs: list[Path] = Field(
        default_factory=list,
        description="Directories inside which jobs may name `hf:PATH` encoders (JSON list); "
        "empty (the default): hf: encoders are refused.",
    )
    max_job_attempts: int | None = Field(
        default=3,
        ge=1,
        description="Attempts of a job whose worker keeps dying (a poison job) before it fails "
        "with 'worker lost N times'; `none`: no limit.",
    )
    job_lease_seconds: float = Field(
        default=120.0, description="A running job whose heartbeat is older is re-queued."
    )
    reconcile_interval_seconds: float = Field(
        default=30.0, description="How often a worker re-enqueues lost jobs."
    )
    requeue_queued_after_seconds: float = Field(
        default=600.0, description="A queued job not picked up for this long is sent again."
    )
    max_job_seconds: int = Field(
        default=7 * 24 * 3600, description="Longest training job; sets Redis visibility_timeout."
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ELMO_HOME."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'elmo.db').resolve()}"

    @property
    def effective_artifacts_dir(self) -> Path:
        """The artifacts directory, defaulting to ELMO_HOME/artifacts."""
        return (self.artifacts_dir or self.home / "artifacts").resolve()

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker URL, defaulting to the embedded filesystem broker (its URL names a
        host only so that kombu does not warn about a missing one: the folders are the queue)."""
        return self.broker_url or "filesystem://localhost//"

    @property
    def broker_dir(self) -> Path:
        """Folder of the embedded filesystem broker."""
        return (self.home / "broker").resolve()

    @property
    def train_queue(self) -> str:
        """Name of the training queue (GPU workers)."""
        return f"{self.queue_prefix}train"

    @property
    def predict_queue(self) -> str:
        """Name of the batch-inference queue."""
        return f"{self.queue_prefix}predict"

    def ensure_dirs(self) -> None:
        """Create the home, artifacts and (embedded) broker directories."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.effective_artifacts_dir.mkdir(parents=True, exist_ok=True)
        if not self.broker_url:
            for sub in ("queue", "processed"):
                (self.broker_dir / sub).mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()

"""Request and response bodies of the REST API (pydantic), separate from the ORM tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from elmo_core.config import TrainConfig
from service.jobs.states import JobState


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""A name without control characters (a NUL cannot be stored in PostgreSQL text)."""


class DatasetOut(_Out):
    """A validated dataset and its statistics."""

    id: str
    name: str
    format: str
    size_bytes: int
    num_labels: int
    num_train: int
    num_test: int
    num_features: int | None
    stats: dict[str, Any]
    created_at: datetime


class JobCreate(BaseModel):
    """Body of POST /v1/jobs: which dataset, the trainer's config, an optional name."""

    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    config: TrainConfig = Field(default_factory=TrainConfig)
    name: str | None = Field(default=None, max_length=300, pattern=PRINTABLE)


class Progress(BaseModel):
    """Where a running job is."""

    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    fraction: float | None = None
    eta_s: float | None = None
    throughput: float | None = None
    loss: float | None = None


class JobOut(BaseModel):
    """A training job as the API shows it."""

    id: str
    name: str | None
    dataset_id: str
    state: JobState
    phase: str | None
    progress: Progress
    latest_metrics: dict[str, Any] | None
    latest_metrics_split: str | None = Field(
        default=None,
        description="The split `latest_metrics` were measured on: `validation` (the epoch just "
        "evaluated, while training) or `test` (the saved and served model, once succeeded).",
    )
    failure_reason: str | None
    cancel_requested: bool
    attempt: int
    worker: str | None
    heartbeat_at: datetime | None
    memory_plan: dict[str, Any] | None
    model_id: str | None
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class MetricsPoint(BaseModel):
    """Metrics of one evaluation."""

    epoch: int
    split: str | None = Field(
        default=None, description="The split evaluated: `validation` (selects the model) or `test`."
    )
    metrics: dict[str, Any]
    created_at: datetime


class TelemetryOut(BaseModel):
    """Memory and throughput records of a job, in the order the trainer reported them."""

    job_id: str
    records: list[dict[str, Any]]


class LogLine(BaseModel):
    """One log line of a job."""

    time: datetime
    message: str


class ModelOut(_Out):
    """A trained model."""

    id: str
    name: str | None
    job_id: str
    dataset_id: str
    num_labels: int
    precision: str | None
    size_bytes: int
    metrics: dict[str, Any] | None
    config: dict[str, Any]
    created_at: datetime


class PredictRequest(BaseModel):
    """Body of POST /v1/models/{id}/predict."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1)
    k: int = Field(default=10, ge=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    exclude_label_ids: list[list[int]] | None = Field(
        default=None,
        description="One list per text of label ids never to return for it (e.g. the item the "
        "text describes, when that item is itself a label).",
    )


class LabelScore(BaseModel):
    """One predicted label of a text."""

    label_id: int
    label: str | None
    score: float


class PredictResponse(BaseModel):
    """Per input text, its top-k labels (best first)."""

    model_id: str
    k: int
    predictions: list[list[LabelScore]]


class PredictJobOut(_Out):
    """A batch inference job."""

    id: str
    model_id: str
    state: JobState
    k: int
    threshold: float | None
    num_texts: int
    failure_reason: str | None
    results_url: str | None = None
    created_at: datetime
    finished_at: datetime | None


class PlanRequest(BaseModel):
    """Body of POST /v1/plan: a config and the dataset's shape (or a dataset id)."""

    model_config = ConfigDict(extra="forbid")
    config: TrainConfig = Field(default_factory=TrainConfig)
    dataset_id: str | None = None
    num_labels: int | None = Field(default=None, ge=1, le=10**10)
    num_features: int | None = Field(default=None, ge=1, le=10**10)
    gpu_memory_gib: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="GPU to check against (GiB, at most 1e6); default the worker's setting.",
    )


class HostPlanOut(BaseModel):
    """Predicted peak host RAM of a job (from the dataset's statistics) and whether it fits."""

    parts_bytes: dict[str, int]
    total_bytes: int
    total_gib: float
    host_memory_gib: float | None
    fits: bool | None


class PlanOut(BaseModel):
    """Predicted peak GPU memory and whether it fits."""

    num_labels: int
    num_features: int | None
    chunk_size: int
    parts_bytes: dict[str, int]
    total_bytes: int
    total_gib: float
    gpu_memory_gib: float | None
    fits: bool | None
    host: HostPlanOut | None = None


class KeyOut(BaseModel):
    """One of the owner's keys (never its secret)."""

    key_id: str
    prefix: str
    scope: str
    created_at: datetime
    revoked: bool


class KeyCreate(BaseModel):
    """Body of POST /v1/keys."""

    model_config = ConfigDict(extra="forbid")
    scope: Literal["full", "predict"] = "full"


class KeyCreated(BaseModel):
    """A new key: its token is shown in this response only."""

    key_id: str
    prefix: str
    scope: str
    token: str


class KeyInfo(BaseModel):
    """Who the presented key belongs to, and its scope."""

    key_id: str
    owner: str
    prefix: str
    scope: str

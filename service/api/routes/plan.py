"""POST /v1/plan: predicted peak GPU memory of a config on a dataset shape, and whether it fits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import OwnerDep, SessionDep, SettingsDep
from service.core.planning import plan_for
from service.crud import get_owned
from service.errors import Unprocessable
from service.models import Dataset
from service.schemas import PlanOut, PlanRequest

router = APIRouter(prefix="/v1", tags=["plan"])


@router.post("/plan", response_model=PlanOut, summary="Predict the peak GPU memory of a job")
def plan(body: PlanRequest, session: SessionDep, owner: OwnerDep, settings: SettingsDep) -> Any:
    """Plan from `num_labels` (and `num_features`) or from an uploaded dataset's shape.

    `fits` compares with `gpu_memory_gib`, or with the training workers' GPU (a setting). With a
    dataset, `host` is the host RAM plan, checked against the workers' RAM where it is set.
    """
    num_labels, num_features = body.num_labels, body.num_features
    stats = None
    if body.dataset_id is not None:
        ds = get_owned(session, Dataset, body.dataset_id, owner)
        num_labels = num_labels or ds.num_labels
        num_features = num_features or ds.num_features
        stats = ds.stats
    if num_labels is None:
        raise Unprocessable("give num_labels or a dataset_id")
    gpu = body.gpu_memory_gib if body.gpu_memory_gib is not None else settings.worker_gpu_memory_gib
    return plan_for(
        body.config, num_labels, num_features, gpu, stats, settings.worker_host_memory_gib
    )

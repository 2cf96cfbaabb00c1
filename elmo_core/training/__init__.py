"""Training: `TrainConfig`, the recipe (`train`), callbacks, checkpoints, telemetry, memory plan."""

from elmo_core.config import TrainConfig, load_config, parse_config
from elmo_core.training.callbacks import (
    PHASES,
    Progress,
    TrainerCallbacks,
    TrainingCancelled,
    TrainingDiverged,
    TrainResult,
)
from elmo_core.training.checkpoint import CheckpointError
from elmo_core.training.host_planner import HostMemoryPlan, plan_host_memory
from elmo_core.training.planner import MemoryPlan, plan_memory
from elmo_core.training.recipe import train

__all__ = [
    "PHASES",
    "CheckpointError",
    "HostMemoryPlan",
    "MemoryPlan",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "TrainerCallbacks",
    "TrainingCancelled",
    "TrainingDiverged",
    "load_config",
    "parse_config",
    "plan_host_memory",
    "plan_memory",
    "train",
]

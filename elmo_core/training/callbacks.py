"""The hooks a training run reports through, and what a run returns.

The CLI (rich progress bars) and the worker (job store) subclass `TrainerCallbacks`; the recipe
never prints. `should_stop` is the cooperative cancel: the recipe checks it after every step,
writes a checkpoint and raises `TrainingCancelled`, so `train(..., resume=True)` continues the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from elmo_core.errors import ElmoError

PHASES = ("loading", "featurizing", "priors", "training", "evaluating", "saving")


class TrainingCancelled(ElmoError):
    """`should_stop()` returned True; a checkpoint of the step reached was written first."""

    def __init__(self, epoch: int, step: int, checkpoint: Path) -> None:
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        super().__init__(
            f"training cancelled at epoch {epoch}, step {step}; checkpoint {checkpoint}"
        )


class TrainingDiverged(ElmoError):
    """A non-finite (NaN/Inf) loss or weight appeared; names which and where. No checkpoint of
    the diverged state is written, so the last checkpoint holds finite weights."""

    def __init__(self, what: str, epoch: int, step: int) -> None:
        self.what, self.epoch, self.step = what, epoch, step
        super().__init__(f"training diverged: {what} at epoch {epoch}, step {step}")


@dataclass
class Progress:
    """Where a run is: 1-based epoch, global step (0-based count of finished steps), throughput."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    step_in_epoch: int
    steps_per_epoch: int
    throughput: float
    """Training points per second over the current epoch."""
    eta_s: float
    """Estimated seconds until the last step (evaluation excluded)."""
    loss: float | None = None
    """Summed BCE over all labels / batch size, computed every `log_every` steps (else None)."""


class TrainerCallbacks:
    """No-op hooks; subclass and override what you need."""

    def on_phase(self, phase: str) -> None:
        """The run enters a phase: one of `PHASES`."""

    def on_progress(self, p: Progress) -> None:
        """After each training step."""

    def on_metrics(self, epoch: int, metrics: dict[str, float]) -> None:
        """After each epoch's evaluation (percentages, keys like `P@1`)."""

    def on_telemetry(self, record: dict) -> None:
        """A memory record: `{"kind": "static", ...}` once, `{"kind": "epoch", ...}` per epoch."""

    def on_log(self, message: str) -> None:
        """A human-readable line about the run."""

    def should_stop(self) -> bool:
        """Return True to cancel the run cooperatively."""
        return False


@dataclass
class TrainResult:
    """What `train` returns: where the model is, which epoch it is and its metrics.

    `metrics` are the saved model's on the test split (None without one): the numbers shown
    everywhere. `validation_metrics` are its metrics on the validation slice that selected it.
    `history` holds each epoch's evaluation (`split` names which split; `fusion` the weights
    fitted that epoch).
    """

    out_dir: Path
    model_dir: Path
    epoch: int
    metrics: dict[str, float] | None
    validation_metrics: dict[str, float] | None = None
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    stopped_early: dict[str, int] | None = None
    """`{"epoch", "best_epoch", "patience"}` when early stopping ended the run (`eval.patience`)."""
    fusion: dict | None = None
    """The saved model's fusion weights and whether they were fitted on the validation slice."""

    @property
    def split(self) -> str | None:
        """The split `metrics` were measured on: `test`, or None when there was none."""
        return None if self.metrics is None else "test"

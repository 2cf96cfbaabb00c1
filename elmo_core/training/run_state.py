"""A run's resumable state: where it is, what it selected so far, and its checkpoint round trip.

`RunState` is everything besides the tensors that a resumed run needs to continue exactly: the
position (epoch, step), the best epoch on the validation slice, the evaluation history and the
telemetry. `save_run` / `restore_run` write and read it with the encoder, head, optimizer and RNG
tensors through `checkpoint.py` (safetensors + JSON, atomic). A run has one or two encoder
optimizers, by name (`OPTIMIZER_PREFIXES`): "encoder" (optimi AdamW; keys `optim.*`, as before) and,
for a sparse encoder trained on the CPU, "rows" (the n-gram table's `RowSparseAdamW`; keys
`rows.optim.*`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import ValidationError

from elmo_core.config import TrainConfig
from elmo_core.encoders import MemberEncoders
from elmo_core.head import TrainingHead
from elmo_core.training.background_writes import BackgroundWriter, frozen
from elmo_core.training.checkpoint import (
    CheckpointError,
    checkpoint_folder,
    load_checkpoint,
    restore_optimizer_state,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    split_optimizer_state,
)

OPTIMIZER_PREFIXES = {"encoder": "", "rows": "rows."}
"""The checkpoint tensor-key prefix of each named optimizer."""


@dataclass
class RunState:
    """The non-tensor state of a run (JSON in each checkpoint)."""

    epoch: int = 0
    """Finished epochs."""
    step_in_epoch: int = 0
    global_step: int = 0
    best_epoch: int | None = None
    """The epoch of the model saved so far (best on the validation slice)."""
    best_metrics: dict[str, float] | None = None
    history: list[dict] = field(default_factory=list)
    telemetry: dict = field(default_factory=lambda: {"static": None, "epochs": []})
    stopped_early: dict[str, int] | None = None
    """`{"epoch", "best_epoch", "patience"}` once early stopping ended the run, else None."""

    def to_json(self) -> dict:
        """The state as a JSON-able dict."""
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best": None
            if self.best_epoch is None
            else {"epoch": self.best_epoch, "metrics": self.best_metrics},
            "history": self.history,
            "telemetry": self.telemetry,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_json(cls, state: dict) -> RunState:
        """Inverse of `to_json` (a checkpoint older than early stopping has no `stopped_early`:
        it had not stopped)."""
        best = state["best"]
        return cls(
            epoch=int(state["epoch"]),
            step_in_epoch=int(state["step_in_epoch"]),
            global_step=int(state["global_step"]),
            best_epoch=None if best is None else int(best["epoch"]),
            best_metrics=None if best is None else best["metrics"],
            history=state["history"],
            telemetry=state["telemetry"],
            stopped_early=state.get("stopped_early"),
        )


def save_run(
    folder: Path,
    config: TrainConfig,
    run: RunState,
    encoder: torch.nn.Module,
    head: TrainingHead,
    optimizers: Mapping[str, torch.optim.Optimizer],
    total_steps: int,
    writer: BackgroundWriter | None = None,
) -> Path:
    """Write a checkpoint of the run's full state under `folder`; return its directory. With a
    `writer` the files are written on its thread from host copies of the tensors and a frozen
    state (current once `writer.wait()` returns), while the run goes on."""
    tensors = {f"head.{k}": v for k, v in head.state_dict().items()}
    tensors.update({f"encoder.{k}": v for k, v in encoder.state_dict().items()})
    optim_meta = {}
    for name, optimizer in optimizers.items():
        optim_tensors, optim_meta[name] = split_optimizer_state(optimizer)
        prefix = OPTIMIZER_PREFIXES[name]
        tensors.update({f"{prefix}{k}": v for k, v in optim_tensors.items()})
    rng_tensors, rng_meta = rng_state(dropout_generators(encoder))
    tensors.update(rng_tensors)
    state = {
        "config": config.model_dump(mode="json"),
        **run.to_json(),
        "schedule": {"step": run.global_step, "total_steps": total_steps},
        "data_order": {"seed": config.seed, "epoch": run.epoch},
        "optimizer": optim_meta,
        "rng": rng_meta,
    }
    step = run.global_step
    if writer is None:
        return save_checkpoint(folder, step, tensors, state)
    copies, frozen_state = writer.host_copies(tensors), frozen(state)
    writer.submit(lambda: save_checkpoint(folder, step, copies, frozen_state))
    return checkpoint_folder(folder, step)


def restore_run(
    folder: Path,
    config: TrainConfig,
    encoder: torch.nn.Module,
    head: TrainingHead,
    optimizers: Mapping[str, torch.optim.Optimizer],
    device: torch.device,
) -> tuple[RunState, Path]:
    """Load the latest checkpoint under `folder` into the modules; return its RunState and
    directory. CheckpointError when its config differs from `config`."""
    tensors, state, checkpoint = load_checkpoint(folder)
    saved = _with_defaults(state["config"])
    current = config.model_dump(mode="json")
    if saved != current:
        diff = sorted(_diff_keys(saved, current))
        raise CheckpointError(
            f"cannot resume from {checkpoint}: the config differs in {', '.join(diff)}"
        )
    head_state = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
    head.load_state_dict({k: v.to(device) for k, v in head_state.items()})
    encoder_state = {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}
    encoder.load_state_dict(encoder_state)
    saved_optimizers = state["optimizer"]
    if set(saved_optimizers) != set(optimizers):
        raise CheckpointError(
            f"cannot resume from {checkpoint}: it holds the optimizers {sorted(saved_optimizers)}, "
            f"this run has {sorted(optimizers)}"
        )
    for name, optimizer in optimizers.items():
        prefix = OPTIMIZER_PREFIXES[name]
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        restore_optimizer_state(optimizer, own, saved_optimizers[name])
    restore_rng_state(tensors, state["rng"], dropout_generators(encoder))
    return RunState.from_json(state), checkpoint


def dropout_generators(encoder: torch.nn.Module) -> dict[str, torch.Generator]:
    """The encoder's own dropout generators by name (members have one each; others none)."""
    return encoder.generators() if isinstance(encoder, MemberEncoders) else {}


def _with_defaults(saved: dict) -> dict:
    """A checkpoint's config with the defaults of options added since it was written (so an
    older checkpoint still resumes); as written when it does not validate (the diff names why)."""
    try:
        return TrainConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError:
        return saved


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in set(a) | set(b):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys.extend(_diff_keys(va, vb, f"{prefix}{key}."))
        elif va != vb:
            keys.append(f"{prefix}{key}")
    return keys

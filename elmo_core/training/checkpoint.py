"""Resumable checkpoints as safetensors + JSON, written atomically; never pickled.

Layout under `<run>/checkpoints/`: one folder per checkpoint (`step-00001234/` holding
`tensors.safetensors` and `state.json`), written under a temporary name and renamed into place,
then `latest.json` (the pointer to it) is replaced with `os.replace`. A crash at any moment leaves
either the old or the new checkpoint current, never a half-written one.

The trainer writes them on a background thread (`save_run` with a `BackgroundWriter`: the files
of a 2-member wordnet-taxonomy run, 631 MB, took 1.7 s per epoch on the 2-core VM, in which the
training stood still).

Tensors: head state (storage dtype, scale, step, Kahan buffer), encoder parameters, optimizer
tensors, torch RNG states. JSON: epoch and step, optimizer hyper-parameters, numpy and Python RNG
states, the schedule position, the history of metrics and telemetry.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from elmo_core.errors import ElmoError

POINTER = "latest.json"
TENSORS = "tensors.safetensors"
STATE = "state.json"
GENERATOR_PREFIX = "rng.generator."


class CheckpointError(ElmoError):
    """A checkpoint is missing or inconsistent with the run being resumed."""


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON to `path` through a temporary file and `os.replace`."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def checkpoint_folder(root: Path, step: int) -> Path:
    """The folder of the checkpoint of global step `step` under `root`."""
    return root / f"step-{step:08d}"


def save_checkpoint(root: Path, step: int, tensors: dict[str, torch.Tensor], state: dict) -> Path:
    """Write one checkpoint and make it the current one; older checkpoint folders are removed."""
    root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_folder(root, step).name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / TENSORS))
    write_json_atomic(tmp / STATE, state)
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json_atomic(root / POINTER, {"checkpoint": name, "step": step})
    for old in root.glob("step-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(root: Path) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """The current checkpoint's tensors and JSON state, and its folder."""
    pointer = root / POINTER
    if not pointer.exists():
        raise CheckpointError(f"no checkpoint to resume from: {pointer} does not exist")
    folder = root / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    if not (folder / TENSORS).exists() or not (folder / STATE).exists():
        raise CheckpointError(f"checkpoint {folder} is incomplete")
    state = json.loads((folder / STATE).read_text(encoding="utf-8"))
    return load_file(str(folder / TENSORS)), state, folder


def split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as (tensors keyed `optim.<param>.<name>` and
    `optim_group.<group>.<name>`, the JSON-able rest)."""
    full = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, entries in full["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = []
    for number, group in enumerate(full["param_groups"]):
        plain = {}
        for name, value in group.items():
            if torch.is_tensor(value):
                tensors[f"optim_group.{number}.{name}"] = value
            else:
                plain[name] = value
        groups.append(plain)
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of `split_optimizer_state`."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = [dict(group) for group in meta["param_groups"]]
    for key, value in tensors.items():
        if key.startswith("optim_group."):
            _, number, name = key.split(".", 2)
            groups[int(number)][name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state(
    generators: Mapping[str, torch.Generator] | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """The torch (CPU and CUDA), numpy and Python RNG states, and those of the run's own torch
    `generators` by name (`rng.generator.{name}`), as (tensors, JSON)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    for name, generator in (generators or {}).items():
        tensors[f"{GENERATOR_PREFIX}{name}"] = generator.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = value
    np_state = np.random.get_state(legacy=False)
    np_state["state"] = {"key": np_state["state"]["key"].tolist(), "pos": np_state["state"]["pos"]}
    py_version, py_internal, py_gauss = random.getstate()
    return tensors, {
        "numpy": np_state,
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def restore_rng_state(
    tensors: dict[str, torch.Tensor],
    meta: dict,
    generators: Mapping[str, torch.Generator] | None = None,
) -> None:
    """Inverse of `rng_state`; a generator the checkpoint lacks keeps its state."""
    torch.set_rng_state(tensors["rng.torch"])
    for name, generator in (generators or {}).items():
        state = tensors.get(f"{GENERATOR_PREFIX}{name}")
        if state is not None:
            generator.set_state(state)
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    np_state = dict(meta["numpy"])
    np_state["state"] = {
        "key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
        "pos": int(np_state["state"]["pos"]),
    }
    np.random.set_state(np_state)
    py = meta["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))

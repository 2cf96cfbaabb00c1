"""The model artifact directory: everything to predict with, as JSON and safetensors only.

    config.json         format version, the run's TrainConfig, label count, encoder and head meta
    model.safetensors   encoder.* (its dtype) and head.* (storage dtype: e4m3 / bf16 / fp32,
                        plus scale, step, Kahan buffer, permutation)
    label_texts.json    list of label texts (line i = label id i), or null
    tfidf.json          TF-IDF vocabulary and idf (sparse text encoder)
    fusion.json         score fusion: weights and the text priors' settings and vocabularies
                        (the neighbour prior's word TF-IDF is "encoder" when it is tfidf.json's)
    fusion.safetensors  the priors' arrays: character n-grams, label-text and train-point rows
    encoder/            transformer config + tokenizer files (transformer encoder)
    metrics.json        best / last metrics and the per-epoch history
    telemetry.json      memory telemetry of the run

Loading never unpickles: `json` and `safetensors.torch.load_file` only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from elmo_core.config import TrainConfig, parse_config
from elmo_core.encoders import Encoder, load_encoder
from elmo_core.errors import ElmoError
from elmo_core.fusion import FusedScorer
from elmo_core.head import XMCHead
from elmo_core.model.scoring import shared_word_featurizer

FORMAT_VERSION = 2
"""2: a neighbour prior that shares the `tfidf` encoder's featurizer stores it once (tfidf.json)."""
READABLE_FORMATS = (1, 2)
WEIGHTS = "model.safetensors"
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class ModelLoadError(ElmoError):
    """A model directory is missing, incomplete or of an unknown format."""


@dataclass
class LoadedModel:
    """A model read back from its artifact directory."""

    config: TrainConfig
    encoder: Encoder
    head: XMCHead
    label_texts: list[str] | None
    metrics: dict | None
    fusion: FusedScorer | None = None


def save_model(
    directory: Path,
    *,
    config: TrainConfig,
    encoder: Encoder,
    head: XMCHead,
    label_texts: list[str] | None,
    fusion: FusedScorer | None = None,
    metrics: dict | None = None,
    telemetry: dict | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the artifact into a temporary sibling folder, then swap it into `directory`.

    `tensors`: the weights file's contents when the caller took them already
    (`artifact_tensors`, e.g. to write while the training goes on); else read from `encoder` and
    `head` now.

    A failed write (a full disk, say) removes the temporary folder and leaves `directory` as it
    was; a safetensors I/O failure is raised as the `OSError` it wraps (errno kept, so ENOSPC
    reads as a full disk).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if tensors is None:
            tensors = artifact_tensors(encoder, head)
        _write_artifact(
            tmp, config, encoder, head, tensors, label_texts, fusion, metrics, telemetry
        )
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        error = _as_os_error(exc)
        if error is exc:
            raise
        raise error from exc
    old = directory.parent / f".{directory.name}.old"
    if directory.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old.exists():
        shutil.rmtree(old)
    return directory


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read an artifact directory (JSON + safetensors only) onto `device`."""
    directory = Path(directory)
    if not (directory / "config.json").exists() or not (directory / WEIGHTS).exists():
        raise ModelLoadError(
            f"{directory} is not a model directory (config.json / {WEIGHTS} missing)"
        )
    meta = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if meta.get("format_version") not in READABLE_FORMATS:
        raise ModelLoadError(
            f"{directory}: model format {meta.get('format_version')!r}, "
            f"this version reads {list(READABLE_FORMATS)}"
        )
    config = parse_config(meta["train_config"], source=str(directory / "config.json"))
    device = torch.device(device)
    tensors = load_file(str(directory / WEIGHTS))
    encoder = load_encoder(config.encoder, meta["encoder"], directory)
    encoder_state = {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}
    encoder.to(next(iter(encoder_state.values())).dtype)
    encoder.load_state_dict(encoder_state)
    encoder.to(device).eval()
    head_state = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
    head = XMCHead(
        int(meta["num_labels"]),
        int(meta["dim"]),
        precision=meta["head"]["precision"],
        chunk_size=config.head.chunk_size,
        head_ratio=float(meta["head"]["head_ratio"]),
        kahan_dtype=meta["head"]["kahan_dtype"],
        init_std=0.0,
        device=device,
    )
    head.load_state_dict(head_state)
    label_texts = json.loads((directory / "label_texts.json").read_text(encoding="utf-8"))
    metrics_file = directory / "metrics.json"
    metrics = None
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    fusion = FusedScorer.load(directory, shared_word_featurizer(encoder))
    return LoadedModel(config, encoder, head, label_texts, metrics, fusion)


def _write(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def artifact_state(encoder: Encoder, head: XMCHead) -> dict[str, torch.Tensor]:
    """The weights file's tensors by name (encoder and head state), where the modules hold them
    (their device, possibly sharing their storage)."""
    tensors = {f"encoder.{k}": v.detach() for k, v in encoder.state_dict().items()}
    tensors.update({f"head.{k}": v.detach() for k, v in head.state_dict().items()})
    return tensors


def artifact_tensors(encoder: Encoder, head: XMCHead) -> dict[str, torch.Tensor]:
    """`artifact_state` on the host, contiguous: copied only where they must move (they may
    share the modules' storage)."""
    return {k: v.to("cpu").contiguous() for k, v in artifact_state(encoder, head).items()}


def _write_artifact(
    tmp: Path,
    config: TrainConfig,
    encoder: Encoder,
    head: XMCHead,
    tensors: dict[str, torch.Tensor],
    label_texts: list[str] | None,
    fusion: FusedScorer | None,
    metrics: dict | None,
    telemetry: dict | None,
) -> None:
    """Every file of the artifact, into the (temporary) folder `tmp`; `tensors` are the
    weights file's (`artifact_tensors`)."""
    save_file(tensors, str(tmp / WEIGHTS))
    meta = {
        "format_version": FORMAT_VERSION,
        "num_labels": head.num_labels,
        "dim": head.dim,
        "encoder": encoder.save(tmp),
        "head": {
            "precision": head.precision,
            "head_ratio": head.head_ratio,
            "kahan_dtype": head.kahan_dtype,
        },
        "train_config": config.model_dump(mode="json"),
    }
    _write(tmp / "config.json", meta)
    _write(tmp / "label_texts.json", label_texts)
    _write(tmp / "metrics.json", metrics or {})
    _write(tmp / "telemetry.json", telemetry or {})
    if fusion is not None:
        fusion.save(tmp, shared_word_featurizer(encoder))


def _as_os_error(exc: Exception) -> Exception:
    """A `SafetensorError` caused by the OS ("... (os error 28)") as that `OSError`; any other
    exception unchanged."""
    match = _OS_ERROR.search(str(exc)) if isinstance(exc, SafetensorError) else None
    if match is None:
        return exc
    code = int(match.group(1))
    return OSError(code, os.strerror(code))

"""Which encoders a job may name: the packaged ones, and `hf:PATH` only inside the model
directories the operator lists in `ELMO_ENCODER_DIRS`. Errors never name a server path."""

from __future__ import annotations

from pathlib import Path

from elmo_core.config import TrainConfig
from service.core.config import Settings
from service.errors import Unprocessable


def check_encoder_allowed(config: TrainConfig, settings: Settings) -> None:
    """Raise Unprocessable when the job's `hf:` encoder lies outside every allowed directory
    (symbolic links and `..` resolved first) or is not a model directory."""
    name = config.encoder.name
    if not name.startswith("hf:"):
        return
    roots = [Path(root).expanduser().resolve() for root in settings.encoder_dirs]
    if not roots:
        raise Unprocessable(
            "hf: encoders are not enabled on this server (the operator lists the allowed model "
            "directories in ELMO_ENCODER_DIRS); use tfidf, features or minilm"
        )
    path = Path(name.removeprefix("hf:")).expanduser().resolve()
    inside = any(path == root or root in path.parents for root in roots)
    if not inside or not (path / "config.json").is_file():
        raise Unprocessable(
            "this hf: encoder is not one of the model directories the operator allows "
            "(ELMO_ENCODER_DIRS), or is not a model directory"
        )

"""The model layer that training and inference both stand on.

- `artifact`: the model directory (JSON + safetensors), its format version, save and load;
- `scoring`: encoder + head (+ text priors) -> ranked labels, chunked, never B x L in memory;
- `evaluation`: the metrics of a model's ranking on a split (trainer, `elmo eval`, benches).

The run's configuration is `elmo_core.config` (pydantic only, no torch). Neither this package nor
`elmo_core.config` imports `elmo_core.training` or `elmo_core.inference`.
"""

from elmo_core.model.artifact import (
    FORMAT_VERSION,
    LoadedModel,
    ModelLoadError,
    load_model,
    save_model,
)

__all__ = ["FORMAT_VERSION", "LoadedModel", "ModelLoadError", "load_model", "save_model"]

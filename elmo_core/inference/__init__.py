"""Inference: `Predictor`, a loaded model that turns texts into top-k labels.

The artifact itself (save/load) is `elmo_core.model`; its names are re-exported here.
"""

from elmo_core.inference.predictor import Predictor
from elmo_core.model import LoadedModel, ModelLoadError, load_model, save_model

__all__ = ["LoadedModel", "ModelLoadError", "Predictor", "load_model", "save_model"]

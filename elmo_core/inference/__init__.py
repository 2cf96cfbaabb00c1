"""Inference: the model artifact directory (JSON + safetensors) and `Predictor`."""

from elmo_core.inference.artifact import LoadedModel, ModelLoadError, load_model, save_model
from elmo_core.inference.predictor import Predictor

__all__ = ["LoadedModel", "ModelLoadError", "Predictor", "load_model", "save_model"]

"""The API process's cache of loaded models (LRU by model id, thread-safe loading)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class ModelCache:
    """Keeps up to `capacity` `Predictor`s; a model is loaded once even under concurrent calls."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, model_id: str, path: str) -> Any:
        """The Predictor of `model_id`, loading it from `path` on a miss."""
        with self._lock:
            if model_id in self._items:
                self._items.move_to_end(model_id)
                return self._items[model_id]
            load_lock = self._loading.setdefault(model_id, threading.Lock())
        with load_lock:
            with self._lock:
                if model_id in self._items:
                    return self._items[model_id]
            from elmo_core.inference import Predictor

            predictor = Predictor.load(path)
            with self._lock:
                self._items[model_id] = predictor
                self._items.move_to_end(model_id)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
                self._loading.pop(model_id, None)
            return predictor

    def evict(self, model_id: str) -> None:
        """Forget a model (after it is deleted)."""
        with self._lock:
            self._items.pop(model_id, None)

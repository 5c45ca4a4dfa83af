"""``LocalBackend``: the model inside the web process (tests, ``--in-process`` debugging).

Same interface as the pool, same host code, no crash isolation and no deadlines: a model that
hangs here hangs its caller. Calls are serialised with a lock, as in a model host.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from winserve.backends.base import Backend, Health, Prediction, ReplicaHealth, prediction_from
from winserve.backends.batch import row_count
from winserve.errors import ModelLoadError, ModelUnavailable
from winserve.host import ModelHost
from winserve.metrics import batch_rows_histogram
from winserve.model_info import ModelInfo, ModelSpec
from winserve.rows import Payload

log = logging.getLogger("winserve.model")


class LocalBackend(Backend):
    def __init__(self, spec: ModelSpec) -> None:
        self._spec = spec
        self._host = ModelHost()
        self._lock = threading.Lock()
        self._info: ModelInfo | None = None
        self._error = ""
        self._closed = False
        self._loaded = threading.Event()
        self.batch_rows = batch_rows_histogram()

    def start(self) -> None:
        """Load in a thread of this process: returns at once, like the pool."""
        threading.Thread(target=self._load, name="winserve-local-load", daemon=True).start()

    def _load(self) -> None:
        with self._lock:
            record = self._host.load(self._spec)
        if record["ok"]:
            self._info = ModelInfo.from_dict(record["info"])
        else:
            self._error = record["error"]["message"]
        self._loaded.set()

    def wait_ready(self, timeout: float) -> ModelInfo:
        if not self._loaded.wait(timeout):
            raise ModelLoadError(f"the model did not load within {timeout:g} s")
        if self._info is None:
            raise ModelLoadError(self._error or "the model is not loaded")
        return self._info

    def describe(self) -> ModelInfo:
        if self._info is None:
            raise ModelUnavailable("the model is not loaded")
        return self._info

    def predict(self, payload: Payload, proba: bool = False, scores: bool = False) -> Prediction:
        if self._info is None or self._closed:
            raise ModelUnavailable("the model is not loaded")
        self.batch_rows.observe(row_count(payload))
        with self._lock:
            record = self._host.predict(payload, proba, scores)
        return prediction_from(record, log)

    def ask(self, method: str, payload: Payload, options: dict[str, Any]) -> dict[str, Any]:
        if self._info is None or self._closed:
            raise ModelUnavailable("the model is not loaded")
        with self._lock:
            record: dict[str, Any] = getattr(self._host, method)(payload, options)
        return record

    def health(self) -> Health:
        if self._closed:
            return Health("stopped", (ReplicaHealth(0, "stopped"),))
        if not self._loaded.is_set():
            return Health("loading", (ReplicaHealth(0, "loading"),))
        if self._info is None:
            return Health(
                "failed", (ReplicaHealth(0, "failed", last_error=self._error),), reason=self._error
            )
        replica = ReplicaHealth(
            0, "ready", pid=self._host.pid(), load_seconds=self._info.load_seconds
        )
        return Health("ready", (replica,))

    def close(self) -> None:
        self._closed = True

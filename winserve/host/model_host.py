"""``ModelHost``: holds one loaded model and answers with plain data.

Every answer is a record, never a raised exception, so nothing from the model's libraries
has to be unpickled (or even importable) in the web process::

    load(spec)              -> {"ok": True, "info": {...}} | {"ok": False, "error": {...}}
    predict(payload, proba) -> {"ok": True, "predictions": [...], "probabilities": [...]|None}
                             | {"ok": False, "error": {"type", "message", "input_error", ...}}
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
import warnings
from datetime import UTC, datetime
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host import describe, loading
from winserve.host.inputs import build_input
from winserve.model_info import ModelSpec

# Exceptions a model raises when the rows themselves are the problem (wrong values, unknown
# category, shape): the caller gets a 400, not a 500.
INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
FEATURE_NAMES_WARNING = "X does not have valid feature names"
MAX_MESSAGE = 2000


def error_record(exc: BaseException) -> dict[str, Any]:
    message = str(exc).strip() or type(exc).__name__
    return {
        "type": type(exc).__name__,
        "message": message[:MAX_MESSAGE],
        "input_error": isinstance(exc, INPUT_ERRORS),
        "traceback": traceback.format_exc(),
    }


class ModelHost:
    """One model, loaded once. Not thread-safe by contract: one caller at a time."""

    def __init__(self) -> None:
        self._model: Any = None
        self._features: list[dict[str, Any]] = []
        self._names_known = False
        self._arrays_ok = False
        self._description: dict[str, Any] = {}
        self._info: dict[str, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def info(self) -> dict[str, Any]:
        return self._info

    def load(self, spec: ModelSpec) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            info = self._load(spec)
        except ModelLoadError as exc:
            return {
                "ok": False,
                "error": {
                    "type": "ModelLoadError",
                    "message": str(exc),
                    "input_error": False,
                    "traceback": "",
                },
            }
        except Exception as exc:
            return {"ok": False, "error": error_record(exc)}
        info["load_seconds"] = round(time.perf_counter() - started, 3)
        self._info = info
        return {"ok": True, "info": info}

    def _load(self, spec: ModelSpec) -> dict[str, Any]:
        loaded = loading.load(spec)
        loading.single_threaded(loaded.model)
        self._use(loaded)
        info = self._describe(loaded)
        self._sample(info)
        if info["sample_error"] and loaded.mmap:
            # A memory-mapped array is read-only; a model that writes to its own arrays in
            # predict() fails only that way. Load it again into private memory.
            loaded = loading.load(dataclasses.replace(spec, mmap=False))
            loading.single_threaded(loaded.model)
            self._use(loaded)
            info = self._describe(loaded)
            self._sample(info)
        return info

    def _use(self, loaded: loading.Loaded) -> None:
        self._model = loaded.model
        self._description = description = describe.describe(loaded.model)
        self._features = description["features"]
        self._names_known = description["feature_names_known"]
        self._arrays_ok = False
        if self._names_known and all(f["kind"] == "number" for f in self._features):
            self._arrays_ok = self._same_on_arrays()

    def _same_on_arrays(self) -> bool:
        """Whether the model answers a plain array exactly as it answers a DataFrame."""
        import numpy as np

        matrix = np.array([[0.0] * len(self._features), [1.0] * len(self._features)])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                framed = self._model.predict(
                    build_input({"matrix": matrix}, self._features, True, False)
                )
                plain = self._model.predict(matrix)
            return bool(np.array_equal(np.asarray(framed), np.asarray(plain)))
        except Exception:
            return False

    def _describe(self, loaded: loading.Loaded) -> dict[str, Any]:
        return {
            **self._description,
            "name": loaded.name,
            "source": loaded.source,
            "sha256": loaded.sha256,
            "file_size": loaded.file_size,
            "demo": loaded.demo,
            "mmap": loaded.mmap,
            "saved_with_sklearn": loaded.saved_with_sklearn,
            "sklearn_version": loading.sklearn_version(),
            "warnings": loaded.warnings,
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sample_prediction": None,
            "sample_error": "",
            "extra": {
                "description": describe_text(loaded),
                "numeric_rows_as": "array" if self._arrays_ok else "dataframe",
                "code_file": loaded.code_file,
            },
        }

    def _sample(self, info: dict[str, Any]) -> None:
        if not self._features:
            info["sample_error"] = "the model declares no input columns; no sample was run"
            return
        row = describe.sample_row(self._features)
        result = self.predict({"columns": {k: [v] for k, v in row.items()}}, False)
        if result["ok"]:
            info["sample_prediction"] = result["predictions"][0]
        else:
            error = result["error"]
            info["sample_error"] = f"{error['type']}: {error['message'].splitlines()[0]}"

    def predict(self, payload: dict[str, Any], proba: bool) -> dict[str, Any]:
        if self._model is None:
            return {
                "ok": False,
                "error": {
                    "type": "NotLoaded",
                    "message": "no model loaded",
                    "input_error": False,
                    "traceback": "",
                },
            }
        try:
            frame = build_input(payload, self._features, self._names_known, self._arrays_ok)
            with warnings.catch_warnings():
                if self._arrays_ok:  # checked equivalent at load time; the warning is moot
                    warnings.filterwarnings("ignore", message=FEATURE_NAMES_WARNING)
                predictions = describe.plain(self._model.predict(frame))
                probabilities = describe.plain(self._model.predict_proba(frame)) if proba else None
        except Exception as exc:
            return {"ok": False, "error": error_record(exc)}
        return {"ok": True, "predictions": predictions, "probabilities": probabilities}


def describe_text(loaded: loading.Loaded) -> str:
    if loaded.demo:
        from winserve.host.demo import DEMO_DESCRIPTION

        return DEMO_DESCRIPTION
    return str(getattr(loaded.model, "description", "") or "")

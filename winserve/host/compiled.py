"""``compile = "onnx"``: answer from onnxruntime a scikit-learn model converted at load, but only
once it answered as scikit-learn does (issue 16).

::

    loading.load(spec) ─► the scikit-learn model, as always
          │ skl2onnx (input types from the model's description)
          ▼
    an ONNX graph ─► probe rows (≥ 1,000: the card's example, category values, numbers
          │          around every column's split thresholds and their float32 roundings)
          ▼
    same labels, probabilities within 1e-6 on every row? ── no ─► serve scikit-learn, and
          │ yes                                                  say why (``runtime``)
          ▼
    ``CompiledModel``: onnxruntime answers; rows with a missing value go to scikit-learn
    unless the graph answered those probes the same too.

Why probe at the thresholds: skl2onnx computes in float32. A tree compares its input with a
float64 threshold; a value between that threshold and its float32 rounding goes one way in
scikit-learn and the other in the graph (HistGradientBoosting compares float64 inputs, so a
value just beside a threshold shows it). Everything runs in the model host, within
``load_timeout``.

This module converts and serves; ``compile_probes`` makes the probe rows and compares the two
runtimes' answers on them.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host import describe, loading, onnx_model
from winserve.host.compile_probes import (
    differences,
    frame,
    latencies,
    missing_rows,
    one_row,
    probe_rows,
)
from winserve.model_info import ModelSpec

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # read by onnxruntime releases from 1.13 on


class NotCompiled(Exception):
    """Why the model is served by scikit-learn after all; the message is shown as is."""


def load(spec: ModelSpec) -> loading.Loaded:
    loaded = loading.load(dataclasses.replace(spec, compile="off"))
    if isinstance(loaded.model, onnx_model.OnnxModel):
        return loaded  # already a graph: onnxruntime answers anyway
    loading.single_threaded(loaded.model)
    try:
        loaded.model = compile_model(loaded.model, spec.example)
    except NotCompiled as exc:
        runtime = f"scikit-learn (--compile onnx fell back: {exc})"
        try:
            loaded.model.winserve_runtime = runtime
        except (AttributeError, TypeError):  # an object that takes no new attribute
            loaded.warnings.append(runtime)
    return loaded


def compile_model(model: Any, example: dict[str, Any]) -> CompiledModel:
    description = describe.describe(model)
    features = description["features"]
    if description["text_input"]:
        raise NotCompiled("a model that takes raw text is not compiled")
    if not features:
        raise NotCompiled("the model declares no input columns to convert")
    if description["task"] not in ("classification", "regression"):
        raise NotCompiled(
            f"only classifiers and regressors are compiled, not {description['task']}"
        )
    try:
        import skl2onnx  # noqa: F401
    except ImportError:
        raise NotCompiled("skl2onnx is not installed (pip install skl2onnx onnxruntime)") from None
    graph = _convert(model, description)
    compiled = _compiled_class(model)(model, graph, description)
    probes = probe_rows(model, features, example)
    rows = frame(probes, description)
    sklearn_ms, onnx_ms = latencies(model, compiled, one_row(probes, description))
    timing = f"one row {onnx_ms:.3g} ms, scikit-learn {sklearn_ms:.3g} ms"
    verdict = differences(model, compiled, rows, description)
    if verdict:
        raise NotCompiled(f"{verdict} (of {len(probes):,} probe rows; onnxruntime: {timing})")
    compiled.missing_to_sklearn = bool(
        differences(model, compiled, missing_rows(probes, description), description, missing=True)
    )
    note = "; rows with a missing value: scikit-learn" if compiled.missing_to_sklearn else ""
    compiled.winserve_runtime = (
        f"onnxruntime {onnx_model.runtime_version()} (compiled, verified on {len(probes):,} "
        f"rows; {timing}{note})"
    )
    return compiled


# -- conversion -------------------------------------------------------------------------------
def _per_column(model: Any, description: dict[str, Any]) -> bool:
    """One input per column where columns are picked by name or are not numbers; else one
    float tensor (faster, and what a model fitted on an array takes)."""
    if not description["feature_names_known"]:
        return False
    kinds = {f["kind"] for f in description["features"]}
    return kinds != {"number"} or bool(describe._column_transformers(model))


def _convert(model: Any, description: dict[str, Any]) -> onnx_model.OnnxModel:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    features = description["features"]
    if _per_column(model, description):
        types: list[tuple[str, Any]] = []
        for feature in features:
            if feature["kind"] == "number":
                types.append((feature["name"], FloatTensorType([None, 1])))
            elif feature["kind"] in ("category", "string") and all(
                isinstance(c, str) for c in feature.get("categories", [])
            ):
                types.append((feature["name"], StringTensorType([None, 1])))
            else:
                raise NotCompiled(
                    f"column {feature['name']!r} ({feature['kind']}) has no ONNX type"
                )
    else:
        types = [("X", FloatTensorType([None, len(features)]))]
    options = {"zipmap": False} if description["task"] == "classification" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = convert_sklearn(
                model, initial_types=types, options=options, target_opset=TARGET_OPSET
            )
    except Exception as exc:  # skl2onnx names what it cannot convert
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotCompiled(f"skl2onnx cannot convert it: {reason[:300]}") from None
    try:
        return onnx_model.from_bytes(proto.SerializeToString(), "the compiled model")
    except ModelLoadError as exc:
        raise NotCompiled(str(exc)) from None


class CompiledModel:
    """The scikit-learn model's interface, answered by its ONNX graph. The class is renamed
    after the model (``_compiled_class``) so the page and /model still name what was trained."""

    missing_to_sklearn = True
    winserve_runtime = "onnxruntime"

    def __init__(self, model: Any, graph: onnx_model.OnnxModel, description: dict[str, Any]):
        import numpy as np

        self.sklearn_model = model
        self.graph = graph
        self.winserve_features = description["features"]
        self._names = [f["name"] for f in description["features"]]
        self._graph_names = [i.name for i in graph._inputs]
        self._per_column = graph._per_column
        for attribute in ("feature_names_in_", "n_features_in_", "classes_"):
            if hasattr(model, attribute):
                setattr(self, attribute, getattr(model, attribute))
        task = description["task"]
        self._estimator_type = {"classification": "classifier", "regression": "regressor"}[task]
        self._classifier = task == "classification"
        self._np = np

    def _rows(self, rows: Any) -> Any:
        """The rows as the graph takes them: by position, in the description's column order."""
        np = self._np
        if hasattr(rows, "columns"):
            rows = rows[self._names]
            if self._per_column:
                return rows.set_axis(self._graph_names, axis=1)
            return rows.to_numpy(dtype=np.float64)
        return np.asarray(rows)

    def _has_missing(self, rows: Any) -> bool:
        np = self._np
        if isinstance(rows, np.ndarray) and rows.dtype.kind == "f":
            return bool(np.isnan(rows).any())
        import pandas as pd

        table = rows if hasattr(rows, "columns") else pd.DataFrame(np.asarray(rows, dtype=object))
        return bool(table.isna().to_numpy().any())

    def _sklearn(self, rows: Any) -> bool:
        return self.missing_to_sklearn and self._has_missing(rows)

    def predict(self, rows: Any) -> Any:
        if self._sklearn(rows):
            return self.sklearn_model.predict(rows)
        return self.graph.predict(self._rows(rows))

    def predict_proba(self, rows: Any) -> Any:
        if self._sklearn(rows) or not hasattr(self.graph, "predict_proba"):
            return self.sklearn_model.predict_proba(rows)
        return self.graph.predict_proba(self._rows(rows))


def _compiled_class(model: Any) -> type[CompiledModel]:
    """A CompiledModel subclass named as the model, with its score methods (answered by
    scikit-learn: skl2onnx converts predict and predict_proba)."""
    namespace: dict[str, Any] = {}
    for name in ("decision_function", "score_samples"):
        if callable(getattr(model, name, None)):
            namespace[name] = _delegate(name)
    if not callable(getattr(model, "predict_proba", None)):
        namespace["predict_proba"] = None
    return type(describe.model_type(model), (CompiledModel,), namespace)


def _delegate(name: str) -> Any:
    def method(self: CompiledModel, rows: Any) -> Any:
        return getattr(self.sklearn_model, name)(rows)

    method.__name__ = name
    return method

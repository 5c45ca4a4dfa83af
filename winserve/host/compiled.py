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
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from typing import Any

from winserve.errors import ModelLoadError
from winserve.host import describe, loading, onnx_model
from winserve.host.inputs import build_input
from winserve.model_info import ModelSpec

MIN_PROBE_ROWS = 1000
RANDOM_ROWS = 1000  # rows mixing every column's probe values, beside one sweep per value
MAX_VALUES_PER_COLUMN = 600
PROBA_TOLERANCE = 1e-6
NUMBER_TOLERANCE = 1e-6  # a regressor's value, relative to max(1, |value|): float32 arithmetic
LATENCY_SECONDS = 0.5  # spent timing one row in each runtime
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # read by onnxruntime releases from 1.13 on
SEED = 16


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
    rows = _frame(probes, description)
    sklearn_ms, onnx_ms = latencies(model, compiled, _one_row(probes, description))
    timing = f"one row {onnx_ms:.3g} ms, scikit-learn {sklearn_ms:.3g} ms"
    verdict = _differences(model, compiled, rows, description)
    if verdict:
        raise NotCompiled(f"{verdict} (of {len(probes):,} probe rows; onnxruntime: {timing})")
    compiled.missing_to_sklearn = bool(
        _differences(model, compiled, _missing_rows(probes, description), description, missing=True)
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


# -- probe rows -------------------------------------------------------------------------------
def _estimators(model: Any) -> list[Any]:
    """The model and what it is made of (ensembles, the last step of a pipeline)."""
    import numpy as np

    found, stack = [], [model]
    while stack:
        current = stack.pop()
        found.append(current)
        inner = getattr(current, "estimators_", None)
        if inner is not None:
            stack.extend(e for e in np.ravel(np.asarray(inner, dtype=object)) if e is not None)
    return found


ELEMENTWISE = {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler"}


def thresholds(model: Any, n_columns: int) -> dict[int, list[float]]:
    """Every split threshold of the model's trees, by input column: for a tree model, or one
    after elementwise scalers (its thresholds mapped back through them); for other
    pipelines none (their transforms mix or re-code the columns)."""
    import numpy as np

    steps = getattr(model, "steps", None)
    before = [step for _, step in steps[:-1]] if isinstance(steps, list) and steps else []
    if any(type(step).__name__ not in ELEMENTWISE for step in before):
        return {}
    final = describe.final_estimator(model)
    found: dict[int, set[float]] = {}
    for estimator in _estimators(final):
        tree = getattr(estimator, "tree_", None)
        if tree is not None:
            for column, value in zip(tree.feature, tree.threshold, strict=True):
                if 0 <= column < n_columns:
                    found.setdefault(int(column), set()).add(float(value))
        for predictors in getattr(estimator, "_predictors", None) or []:  # HistGradientBoosting
            for predictor in predictors:
                nodes = predictor.nodes
                for node in nodes[~nodes["is_leaf"].astype(bool)]:
                    if not node["is_categorical"] and 0 <= node["feature_idx"] < n_columns:
                        found.setdefault(int(node["feature_idx"]), set()).add(
                            float(node["num_threshold"])
                        )
    mapped: dict[int, list[float]] = {}
    for column, values in found.items():
        table = np.zeros((len(values), n_columns))
        table[:, column] = sorted(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in reversed(before):
                table = step.inverse_transform(table)
        mapped[column] = [float(v) for v in table[:, column] if math.isfinite(v)]
    return mapped


def _around(value: float) -> list[float]:
    """The threshold, its float64 neighbours, its float32 rounding and that one's neighbours."""
    import numpy as np

    single = np.float32(value)
    near = [
        value,
        float(np.nextafter(value, -math.inf)),
        float(np.nextafter(value, math.inf)),
        float(single),
        float(np.nextafter(single, np.float32(-np.inf))),
        float(np.nextafter(single, np.float32(np.inf))),
    ]
    return [v for v in near if math.isfinite(v)]


GENERIC_NUMBERS = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 10.0, -10.0, 100.0, 1000.0, 0.001]


def probe_rows(
    model: Any, features: list[dict[str, Any]], example: dict[str, Any]
) -> list[dict[str, Any]]:
    """At least MIN_PROBE_ROWS rows: the sample row, each column's probe values swept one at a
    time through it, then rows mixing random probe values of every column."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    base = describe.sample_row(features, example)
    splits = thresholds(model, len(features))
    pools: list[list[Any]] = []
    for position, feature in enumerate(features):
        name = feature["name"]
        values: list[Any] = [base[name]]
        if feature.get("categories"):
            values += list(feature["categories"])
        elif feature["kind"] in ("string", "category"):
            values += ["text", ""]
        else:
            start = float(base[name]) if isinstance(base[name], int | float) else 0.0
            values += [start * 1.01, start * 0.99, *GENERIC_NUMBERS]
            chosen = splits.get(position, [])
            if len(chosen) * 6 > MAX_VALUES_PER_COLUMN:
                picked = rng.choice(len(chosen), MAX_VALUES_PER_COLUMN // 6, replace=False)
                chosen = [chosen[i] for i in sorted(picked)]
            for threshold in chosen:
                values += _around(threshold)
        pools.append(values)
    rows = [dict(base)]
    for feature, values in zip(features, pools, strict=True):
        rows += [{**base, feature["name"]: value} for value in values]
    while len(rows) < MIN_PROBE_ROWS or len(rows) < len(features) + RANDOM_ROWS:
        rows.append(
            {
                f["name"]: values[int(rng.integers(len(values)))]
                for f, values in zip(features, pools, strict=True)
            }
        )
    return rows


def _missing_rows(probes: list[dict[str, Any]], description: dict[str, Any]) -> Any:
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    names = [f["name"] for f in description["features"]]
    rows = [{**probes[0], name: math.nan} for name in names]
    rows += [
        {k: (math.nan if rng.random() < 0.3 else v) for k, v in row.items()} for row in probes[:200]
    ]
    return _frame(rows, description)


def _one_row(probes: list[dict[str, Any]], description: dict[str, Any]) -> Any:
    """The sample row as serving hands it over: an array for numbers only (the host checks
    the model answers one the same), else a DataFrame."""
    import numpy as np

    row = _frame(probes[:1], description)
    if all(f["kind"] == "number" for f in description["features"]) and hasattr(row, "columns"):
        return row.to_numpy(dtype=np.float64)
    return row


def _frame(rows: list[dict[str, Any]], description: dict[str, Any]) -> Any:
    """The rows as winserve hands them to the model when serving."""
    features = description["features"]
    columns = {f["name"]: [row[f["name"]] for row in rows] for f in features}
    return build_input({"columns": columns}, features, description["feature_names_known"], False)


# -- verification -----------------------------------------------------------------------------
def _typed(values: Any) -> list[tuple[str, Any]]:
    return [(type(v).__name__, v) for v in describe.plain(values)]


def _differences(
    model: Any,
    compiled: CompiledModel,
    rows: Any,
    description: dict[str, Any],
    missing: bool = False,
) -> str:
    """Empty when the graph answers every row as the model does; else what differs."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = model.predict(rows)
        except Exception:
            if missing:
                return "scikit-learn refuses missing values"
            raise
        try:
            got = compiled.graph.predict(compiled._rows(rows))
        except Exception as exc:
            return f"onnxruntime failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if description["task"] == "regression":
            want_n, got_n = np.asarray(want, dtype=float), np.asarray(got, dtype=float)
            wrong = ~np.isclose(got_n, want_n, rtol=NUMBER_TOLERANCE, atol=NUMBER_TOLERANCE)
            if wrong.ndim > 1:
                wrong = wrong.any(axis=tuple(range(1, wrong.ndim)))
            return _first(wrong, want, got, "predicted")
        wrong = np.array([a != b for a, b in zip(_typed(want), _typed(got), strict=True)])
        if wrong.any():
            return _first(wrong, want, got, "predicted")
        if hasattr(compiled.graph, "predict_proba") and callable(
            getattr(model, "predict_proba", None)
        ):
            want_p = np.asarray(model.predict_proba(rows), dtype=float)
            got_p = np.asarray(compiled.graph.predict_proba(compiled._rows(rows)), dtype=float)
            far = np.abs(want_p - got_p).max(axis=1) > PROBA_TOLERANCE
            return _first(far, want_p.round(7), got_p.round(7), "gave probabilities")
    return ""


def _first(wrong: Any, want: Any, got: Any, what: str) -> str:
    import numpy as np

    count = int(np.count_nonzero(wrong))
    if not count:
        return ""
    index = int(np.flatnonzero(wrong)[0])
    return (
        f"{count:,} probe row{'s' if count > 1 else ''} answered differently: e.g. row {index + 1} "
        f"scikit-learn {what} {describe.plain(want[index])!r}, onnxruntime "
        f"{describe.plain(got[index])!r}"
    )


def latencies(model: Any, compiled: CompiledModel, row: Any) -> tuple[float, float]:
    """Milliseconds for one row, the median of repeated calls, scikit-learn then onnxruntime."""
    return _median_ms(model.predict, row), _median_ms(compiled.predict, row)


def _median_ms(call: Any, row: Any) -> float:
    times: list[float] = []
    end = time.perf_counter() + LATENCY_SECONDS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(times) < 5 or (time.perf_counter() < end and len(times) < 2000):
            started = time.perf_counter()
            with contextlib.suppress(Exception):
                call(row)
            times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1000

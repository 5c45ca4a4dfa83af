"""The check that a model compiled to ONNX answers as scikit-learn does (issue 16): the model and
its description in; probe rows out (``probe_rows``: the sample row, each column's values swept
through it, numbers around every split threshold and their float32 roundings, random mixes),
then the first difference between the two runtimes on them, or "" (``differences``), and one
row's latency in each (``latencies``). ``compiled`` decides from these whether the graph
serves.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import TYPE_CHECKING, Any

from winserve.host import describe
from winserve.host.inputs import build_input, plain

if TYPE_CHECKING:
    from winserve.host.compiled import CompiledModel

MIN_PROBE_ROWS = 1000
RANDOM_ROWS = 1000  # rows mixing every column's probe values, beside one sweep per value
MAX_VALUES_PER_COLUMN = 600
PROBA_TOLERANCE = 1e-6
NUMBER_TOLERANCE = 1e-6  # a regressor's value, relative to max(1, |value|): float32 arithmetic
LATENCY_SECONDS = 0.5  # spent timing one row in each runtime
SEED = 16


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


def missing_rows(probes: list[dict[str, Any]], description: dict[str, Any]) -> Any:
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    names = [f["name"] for f in description["features"]]
    rows = [{**probes[0], name: math.nan} for name in names]
    rows += [
        {k: (math.nan if rng.random() < 0.3 else v) for k, v in row.items()} for row in probes[:200]
    ]
    return frame(rows, description)


def one_row(probes: list[dict[str, Any]], description: dict[str, Any]) -> Any:
    """The sample row as serving hands it over: an array for numbers only (the host checks
    the model answers one the same), else a DataFrame."""
    import numpy as np

    row = frame(probes[:1], description)
    if all(f["kind"] == "number" for f in description["features"]) and hasattr(row, "columns"):
        return row.to_numpy(dtype=np.float64)
    return row


def frame(rows: list[dict[str, Any]], description: dict[str, Any]) -> Any:
    """The rows as winserve hands them to the model when serving."""
    features = description["features"]
    columns = {f["name"]: [row[f["name"]] for row in rows] for f in features}
    return build_input({"columns": columns}, features, description["feature_names_known"], False)


# -- verification -----------------------------------------------------------------------------
def _typed(values: Any) -> list[tuple[str, Any]]:
    return [(type(v).__name__, v) for v in plain(values)]


def differences(
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
        f"scikit-learn {what} {plain(want[index])!r}, onnxruntime "
        f"{plain(got[index])!r}"
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

"""Describe a loaded model: its input columns (with kinds), classes and outputs.

Works on any object with ``predict``; scikit-learn estimators and pipelines give more
(``feature_names_in_``, ``n_features_in_``, ``classes_``); which columns the model takes and of
what kind is read through its wrappers by ``winserve.host.columns`` (issue 22).
"""

from __future__ import annotations

from typing import Any

from winserve.host import columns
from winserve.host.columns import MAX_CATEGORIES_LISTED
from winserve.host.inputs import plain

__all__ = ["MAX_CATEGORIES_LISTED", "describe", "sample_row"]


def model_type(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        return "Pipeline(" + " → ".join(model_type(step) for _, step in steps) + ")"
    return type(model).__name__


def final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        return final_estimator(steps[-1][1])
    return model


# libraries whose estimators answer through a scikit-learn-like class of their own: the page
# and check name them, not scikit-learn (issue 22, a new user's XGBClassifier)
OWN_RUNTIMES = ("xgboost", "catboost", "lightgbm")


def answering_library(model: Any) -> str:
    """Which library answers: the top-level module of the final estimator's class (through
    search wrappers, TransformedTargetRegressor and pipelines), with its version, where it is
    XGBoost, CatBoost or LightGBM; else "scikit-learn"."""
    estimator = model
    for _ in range(20):
        inner = getattr(estimator, "best_estimator_", None) or getattr(
            estimator, "regressor_", None
        )
        if inner is None:
            break
        estimator = inner
    estimator = final_estimator(estimator)
    library = type(estimator).__module__.split(".")[0]
    if library not in OWN_RUNTIMES:
        return "scikit-learn"
    import sys

    version = getattr(sys.modules.get(library), "__version__", "")
    return f"{library} {version}".strip()


TASKS = {
    "classifier": "classification",
    "regressor": "regression",
    "clusterer": "clustering",
    "outlier_detector": "outlier_detection",
}


def task_of(model: Any) -> str:
    kind = getattr(final_estimator(model), "_estimator_type", None)
    if kind is None:
        try:
            kind = final_estimator(model).__sklearn_tags__().estimator_type
        except Exception:  # not a scikit-learn estimator
            kind = None
    if kind is None and getattr(model, "classes_", None) is not None:
        return "classification"
    return TASKS.get(str(kind), "unknown")


def takes_text(model: Any) -> bool:
    """Fitted on a list of documents: the first step turns raw strings into features
    (CountVectorizer, TfidfVectorizer, HashingVectorizer all have ``build_analyzer``)."""
    first = model
    while isinstance(getattr(first, "steps", None), list) and first.steps:
        first = first.steps[0][1]
    return callable(getattr(first, "build_analyzer", None))


def score_method(model: Any) -> str:
    """The model's own score for a row, offered as ``scores`` (outlier detectors, SVMs, …)."""
    from winserve.model_info import SCORE_METHODS

    for name in SCORE_METHODS:
        if callable(getattr(model, name, None)):
            return name
    return ""


def column_kinds(model: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """The kinds the model itself declares for ``names`` (no entry where it is silent)."""
    found = columns.column_kinds(model, names)
    return {name: kind for name, kind in found.items() if kind["kind"] != columns.AS_SENT}


def _column_transformers(model: Any) -> list[Any]:
    """The ColumnTransformers (or HistGradientBoosting's own) that see the raw columns."""
    return [
        r
        for r in columns.readers(model)
        if hasattr(r, "transformers_")
        or hasattr(getattr(r, "_preprocessor", None), "transformers_")
    ]


TEXT_INPUT = "text"  # the one input of a model that takes a list of documents


def describe(model: Any, pins: dict[str, str] | None = None) -> dict[str, Any]:
    """Plain-data description of ``model`` (the fields of ``ModelInfo`` the model determines);
    ``pins``: column kinds the model card pins (``[features.city] kind = "category"``)."""
    names = columns.feature_names(model)
    count = getattr(model, "n_features_in_", None)
    text_input = names is None and takes_text(model)
    formula = columns.statsmodels_columns(model) if names is None else None
    kinds: columns.Kinds = {}
    if text_input:
        feature_names, known = [TEXT_INPUT], False
        kinds = {TEXT_INPUT: {"kind": "string"}}
    elif formula:
        feature_names, known, kinds = list(formula), True, formula
    elif names is not None:
        feature_names, known = names, True
        kinds = columns.column_kinds(model, feature_names)
    elif isinstance(count, int) and count > 0:
        # fitted on a NumPy array, of numbers as good as always: an array of floats it gets,
        # where no step says otherwise (a category encoder)
        feature_names, known = [f"x{i}" for i in range(count)], False
        kinds = columns.column_kinds(model, feature_names)
        for name, kind in kinds.items():
            if kind["kind"] == columns.AS_SENT:
                kinds[name] = {"kind": "number"}
    elif pins:
        # the model says nothing of its columns (a pipeline whose first step is the user's own
        # transformer, without feature_names_in_): the card's [features.<name>] tables, in
        # their order, name them; rows then reach it as a DataFrame of those columns, as in the
        # notebook (a new user's trial: every row was refused, and the card too)
        feature_names, known = list(pins), True
    else:
        feature_names, known = [], False
    features = [{"name": n, **kinds.get(n, {"kind": columns.AS_SENT})} for n in feature_names]
    declared = getattr(model, "winserve_features", None)
    if declared is not None:  # a wrapper that knows its columns (an ONNX graph, issue 16)
        features = [dict(f) for f in declared]
    columns.pin(features, pins or {})
    classes = getattr(model, "classes_", None)
    return {
        "model_type": model_type(model),
        "task": task_of(model),
        "features": features,
        "feature_names_known": known,
        "text_input": text_input,
        "records_input": known and columns.takes_records(model),
        "classes": plain(classes) if classes is not None else [],
        "has_proba": callable(getattr(model, "predict_proba", None)),
        "score_method": score_method(model),
        "runtime": str(getattr(model, "winserve_runtime", "") or answering_library(model)),
    }


def sample_rows(features: list[dict[str, Any]], example: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the load-time check asks, in turn, until one is answered: ``sample_row``, and
    where a column's kind is unknown (issue 22) and the example does not name it, the same
    row with a number there instead of text."""
    rows = [sample_row(features, example)]
    if any(f["kind"] == columns.AS_SENT and f["name"] not in example for f in features):
        rows.append(sample_row(features, example, as_sent=0.0))
    return rows


def sample_row(
    features: list[dict[str, Any]], example: dict[str, Any], as_sent: Any = "text"
) -> dict[str, Any]:
    """One input row for the load-time check prediction: the model card's example where it
    names the column, else a plausible value (the first category, 0, some text; ``as_sent``
    where the column's kind is unknown)."""
    row: dict[str, Any] = {}
    for feature in features:
        name = feature["name"]
        categories = feature.get("categories") or []
        if name in example:
            row[name] = example[name]
        elif feature["kind"] in ("tensor", "image"):  # zeros, a grey image (issue 24)
            from winserve.host.tensors import sample_value

            row[name] = sample_value(feature)
        elif categories:
            row[name] = categories[0]
        elif feature["kind"] == columns.AS_SENT:
            row[name] = as_sent
        elif feature["kind"] == "bool":
            row[name] = False
        elif feature["kind"] == "datetime":
            row[name] = "2024-01-01T00:00:00"
        elif feature["kind"] in ("string", "category"):
            row[name] = "text"
        else:
            row[name] = 0.0
    return row

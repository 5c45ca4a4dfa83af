"""Describe a loaded model: its input columns (with kinds), classes and outputs.

Works on any object with ``predict``; scikit-learn estimators and pipelines give more
(``feature_names_in_``, ``n_features_in_``, ``classes_``, and the encoders inside a
ColumnTransformer tell which columns hold categories).
"""

from __future__ import annotations

import math
from typing import Any

MAX_CATEGORIES_LISTED = 1000


def plain(value: Any) -> Any:
    """numpy arrays and scalars (also inside object arrays) to builtins, recursively."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        kind = getattr(getattr(value, "dtype", None), "kind", "O")
        if kind == "f" and not _all_finite(value):
            # NaN and infinities are not JSON: a missing answer is null, as pandas writes it
            import numpy as np

            return plain(np.where(np.isfinite(value), value, None))
        if kind in "biuf":
            return tolist()  # numeric arrays: tolist() already gives builtins
        value = tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


def _all_finite(array: Any) -> bool:
    import numpy as np

    return bool(np.isfinite(array).all())


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


def _column_transformers(model: Any) -> list[Any]:
    """ColumnTransformers that see the raw input columns (the model itself or first steps;
    HistGradientBoosting* keeps one of its own for category columns)."""
    found = []
    current = model
    while current is not None:
        own = getattr(current, "_preprocessor", None)  # HistGradientBoosting, categorical
        if hasattr(current, "transformers_") or hasattr(own, "transformers_"):
            found.append(current if hasattr(current, "transformers_") else own)
            break
        steps = getattr(current, "steps", None)
        current = steps[0][1] if isinstance(steps, list) and steps else None
    return found


def _leaf_with_categories(transformer: Any) -> Any:
    steps = getattr(transformer, "steps", None)
    candidates = [step for _, step in steps] if isinstance(steps, list) else [transformer]
    for step in candidates:
        if hasattr(step, "categories_") or hasattr(step, "vocabulary_"):
            return step
    return None


def _is_text(values: list[Any]) -> bool:
    return any(isinstance(v, str) for v in values)


def column_kinds(model: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per input column: kind, categories, strictness, from the encoders that consume it."""
    kinds: dict[str, dict[str, Any]] = {}
    for ct in _column_transformers(model):
        indices = getattr(ct, "_transformer_to_input_indices", {})
        for name, transformer, _ in ct.transformers_:
            leaf = _leaf_with_categories(transformer)
            if leaf is None:
                continue
            columns = [names[i] for i in indices.get(name, []) if i < len(names)]
            if hasattr(leaf, "vocabulary_"):
                for column in columns:
                    kinds[column] = {"kind": "string"}
                continue
            strict = getattr(leaf, "handle_unknown", "error") == "error"
            for column, cats in zip(columns, leaf.categories_, strict=False):
                values = _known(cats)
                kinds[column] = {
                    "kind": _kind_of(cats, values),
                    "categories": values[:MAX_CATEGORIES_LISTED],
                    "strict_categories": strict and len(values) <= MAX_CATEGORIES_LISTED,
                }
    kinds.update(_lightgbm_categories(model, names))
    return kinds


def _known(categories: Any) -> list[Any]:
    """The category values, without the missing-value markers an encoder may have learnt."""
    return [
        v
        for v in plain(categories)
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]


def _kind_of(categories: Any, values: list[Any]) -> str:
    if getattr(getattr(categories, "dtype", None), "kind", "") == "b" or (
        values and all(isinstance(v, bool) for v in values)
    ):
        return "bool"
    return "category" if _is_text(values) else "number"


def _lightgbm_categories(model: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """LightGBM fitted on pandas ``category`` columns wants them back with the training
    categories (``pandas_categorical``, in the order of ``categorical_column``): an object
    column is refused with "categorical_feature do not match"."""
    booster = getattr(final_estimator(model), "booster_", None)
    categories = getattr(booster, "pandas_categorical", None)
    positions = (getattr(booster, "params", None) or {}).get("categorical_column") or []
    if not categories or len(categories) != len(positions) or model is not final_estimator(model):
        return {}
    kinds: dict[str, dict[str, Any]] = {}
    for position, cats in zip(positions, categories, strict=True):
        if not isinstance(position, int) or position >= len(names):
            return {}
        values = _known(list(cats))
        kinds[names[position]] = {
            "kind": _kind_of(cats, values),
            "categories": values[:MAX_CATEGORIES_LISTED],
            # unknown values reach LightGBM as missing, as its own set_categories() makes them
            "strict_categories": False,
            "dtype": "category",
        }
    return kinds


TEXT_INPUT = "text"  # the one input of a model that takes a list of documents


def describe(model: Any) -> dict[str, Any]:
    """Plain-data description of ``model`` (the fields of ``ModelInfo`` the model determines)."""
    names = getattr(model, "feature_names_in_", None)
    count = getattr(model, "n_features_in_", None)
    text_input = names is None and takes_text(model)
    if text_input:
        feature_names, known = [TEXT_INPUT], False
    elif names is not None:
        feature_names = [str(n) for n in plain(names)]
        known = True
    elif isinstance(count, int) and count > 0:
        feature_names = [f"x{i}" for i in range(count)]
        known = False
    else:
        feature_names, known = [], False
    kinds = column_kinds(model, feature_names) if known else {}
    default = {"kind": "string"} if text_input else {"kind": "number"}
    features = [{"name": n, **kinds.get(n, default)} for n in feature_names]
    declared = getattr(model, "winserve_features", None)
    if declared is not None:  # a wrapper that knows its columns (an ONNX graph, issue 16)
        features = [dict(f) for f in declared]
    classes = getattr(model, "classes_", None)
    return {
        "model_type": model_type(model),
        "task": task_of(model),
        "features": features,
        "feature_names_known": known,
        "text_input": text_input,
        "classes": plain(classes) if classes is not None else [],
        "has_proba": callable(getattr(model, "predict_proba", None)),
        "score_method": score_method(model),
        "runtime": str(getattr(model, "winserve_runtime", "scikit-learn")),
    }


def sample_row(features: list[dict[str, Any]], example: dict[str, Any]) -> dict[str, Any]:
    """One input row for the load-time check prediction: the model card's example where it
    names the column, else a plausible value (the first category, 0, some text)."""
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
        elif feature["kind"] == "bool":
            row[name] = False
        elif feature["kind"] in ("string", "category"):
            row[name] = "text"
        else:
            row[name] = 0.0
    return row

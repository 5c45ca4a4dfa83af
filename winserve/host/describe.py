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
        if getattr(getattr(value, "dtype", None), "kind", "O") in "biuf":
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


def task_of(model: Any) -> str:
    kind = getattr(final_estimator(model), "_estimator_type", None)
    if kind is None:
        try:
            kind = final_estimator(model).__sklearn_tags__().estimator_type
        except Exception:  # not a scikit-learn estimator
            kind = None
    if kind == "classifier" or getattr(model, "classes_", None) is not None:
        return "classification"
    if kind == "regressor":
        return "regression"
    return "unknown"


def _column_transformers(model: Any) -> list[Any]:
    """ColumnTransformers that see the raw input columns (the model itself or first steps)."""
    found = []
    current = model
    while current is not None:
        if hasattr(current, "transformers_"):
            found.append(current)
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
                values = [
                    v
                    for v in plain(cats)
                    if v is not None and not (isinstance(v, float) and math.isnan(v))
                ]
                kinds[column] = {
                    "kind": "category" if _is_text(values) else "number",
                    "categories": values[:MAX_CATEGORIES_LISTED],
                    "strict_categories": strict and len(values) <= MAX_CATEGORIES_LISTED,
                }
    return kinds


def describe(model: Any) -> dict[str, Any]:
    """Plain-data description of ``model`` (the fields of ``ModelInfo`` the model determines)."""
    names = getattr(model, "feature_names_in_", None)
    count = getattr(model, "n_features_in_", None)
    if names is not None:
        feature_names = [str(n) for n in plain(names)]
        known = True
    elif isinstance(count, int) and count > 0:
        feature_names = [f"x{i}" for i in range(count)]
        known = False
    else:
        feature_names, known = [], False
    kinds = column_kinds(model, feature_names) if known else {}
    features = [{"name": n, **kinds.get(n, {"kind": "number"})} for n in feature_names]
    classes = getattr(model, "classes_", None)
    return {
        "model_type": model_type(model),
        "task": task_of(model),
        "features": features,
        "feature_names_known": known,
        "classes": plain(classes) if classes is not None else [],
        "has_proba": callable(getattr(model, "predict_proba", None)),
    }


def sample_row(features: list[dict[str, Any]]) -> dict[str, Any]:
    """One plausible input row, used for the load-time check prediction."""
    row: dict[str, Any] = {}
    for feature in features:
        categories = feature.get("categories") or []
        if categories:
            row[feature["name"]] = categories[0]
        elif feature["kind"] in ("string", "category"):
            row[feature["name"]] = ""
        else:
            row[feature["name"]] = 0.0
    return row

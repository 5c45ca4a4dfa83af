"""Which input columns a model takes and of what kind, read from the model's own metadata,
through the wrappers data scientists save (issue 22, DESIGN decision 12).

::

    model ──► wrappers: search (best_estimator_), TransformedTargetRegressor (regressor_),
              calibration (calibrated_classifiers_[i].estimator), voting, stacking and
              multi-output (estimators_), pipelines (sklearn's, imbalanced-learn's: the first
              step that is not "passthrough")
          ──► the steps that see the raw columns ("readers"), each saying what it knows:
              ColumnTransformer  per column: an encoder's categories, text vectorizer: string,
                                 a numeric transformer: number; passthrough, "drop" and
                                 FunctionTransformer columns: as sent ("any")
              HistGradientBoosting  its own category encoder (from_dtype), else numbers
              XGBoost            feature_types ("c": category, with the categories it saved)
              CatBoost           get_cat_feature_indices() / text features, else numbers
              LightGBM           pandas_categorical, else numbers
              DictVectorizer     "key=value" names: categories; other names: numbers
              other scikit-learn numbers (its input check makes floats of whatever it gets)
              anything else      nothing: the column is passed as sent

A column no reader declares is "any": a JSON value keeps its JSON type, a CSV cell is typed
as ``pd.read_csv`` would type its column; only a kind the model declares turns text into a
number. Each column's ``kind_note`` says where its kind came from when it is "any".
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

MAX_CATEGORIES_LISTED = 1000
AS_SENT = "any"
NOTE_UNKNOWN = "no step of the model declares its kind"
NOTE_DROPPED = "dropped by the model's ColumnTransformer"
NOTE_PASSTHROUGH = "passed through by the model's ColumnTransformer"
NOTE_FUNCTION = "read by a FunctionTransformer"

Kinds = dict[str, dict[str, Any]]


def plain_list(values: Any) -> list[Any]:
    from winserve.host.inputs import plain

    result = plain(values)
    return list(result) if isinstance(result, (list, tuple)) else [result]


def inner(model: Any) -> list[Any]:
    """The estimators a wrapper hands its raw rows to ([] for anything that is no wrapper)."""
    best = getattr(model, "best_estimator_", None)
    if best is not None:
        return [best]
    regressor = getattr(model, "regressor_", None)
    if regressor is not None:
        return [regressor]
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if isinstance(calibrated, list) and calibrated:
        return [c.estimator for c in calibrated if getattr(c, "estimator", None) is not None]
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        used = [s for _, s in steps if s is not None and s != "passthrough"]
        # an imputer keeps the columns as they are: an encoder after it declares them
        imputed = len(used) > 1 and type(used[0]).__name__ == "SimpleImputer"
        if imputed and (hasattr(used[1], "categories_") or hasattr(used[1], "transformers_")):
            return used[1:2]
        return used[:1]
    estimators = getattr(model, "estimators_", None)
    if isinstance(estimators, list) and estimators and not hasattr(model, "tree_"):
        # Voting/Stacking/MultiOutput; a forest's trees (estimators_ too) read numbers, and
        # the forest itself says so
        if hasattr(model, "transformers_") or _is_forest(model):
            return []
        return [e for e in estimators if e is not None and e != "drop"]
    return []


def _is_forest(model: Any) -> bool:
    module = type(model).__module__
    return module.startswith("sklearn.ensemble._forest") or module.startswith(
        ("sklearn.ensemble._bagging", "sklearn.ensemble._iforest", "sklearn.ensemble._weight")
    )


def readers(model: Any, depth: int = 0) -> list[Any]:
    """The steps, inside every wrapper, that see the raw input columns."""
    if depth > 20:
        return []
    wrapped = inner(model)
    if not wrapped:
        return [model]
    found: list[Any] = []
    for estimator in wrapped:
        found += readers(estimator, depth + 1)
    return found


def feature_names(model: Any) -> list[str] | None:
    """The input column names the model (or a step inside it) was fitted with."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in plain_list(names)]
    for reader in readers(model):
        for attribute in ("feature_names_in_", "feature_names_"):  # catboost: feature_names_
            names = getattr(reader, attribute, None)
            if names is not None and not _is_dict_vectorizer(reader):
                found = [str(n) for n in plain_list(names)]
                if found and not all(n.isdigit() for n in found):  # catboost's "0", "1", …
                    return found
        if _is_dict_vectorizer(reader):
            return list(_dict_kinds(reader))
    return None


def takes_records(model: Any) -> bool:
    """The model reads a list of dicts (a DictVectorizer first): rows are handed over so."""
    return any(_is_dict_vectorizer(r) for r in readers(model))


def column_kinds(model: Any, names: list[str]) -> Kinds:
    """Per input column, what the model's readers declare; "any" where none does."""
    kinds: Kinds = {}
    for reader in readers(model):
        for name, kind in _reader_kinds(reader, names).items():
            current = kinds.get(name)
            if current is None or current["kind"] == AS_SENT:
                kinds[name] = kind
            elif current["kind"] == "number" and kind["kind"] != AS_SENT:
                kinds[name] = kind  # one reader wants text here: a number is refused by it
    for name in names:
        kinds.setdefault(name, {"kind": AS_SENT, "kind_note": NOTE_UNKNOWN})
    return kinds


def _reader_kinds(reader: Any, names: list[str]) -> Kinds:
    if hasattr(reader, "transformers_"):
        return _column_transformer_kinds(reader, names)
    own = getattr(reader, "_preprocessor", None)  # HistGradientBoosting, categorical
    if hasattr(own, "transformers_"):
        return _column_transformer_kinds(own, names)
    if _is_dict_vectorizer(reader):
        return _dict_kinds(reader)
    if hasattr(reader, "categories_"):  # an encoder first, on the whole frame
        return _transformer_kinds(reader, names)
    if callable(getattr(reader, "get_booster", None)):
        return _xgboost_kinds(reader, names)
    if callable(getattr(reader, "get_cat_feature_indices", None)):
        return _catboost_kinds(reader, names)
    booster = getattr(reader, "booster_", None)
    if booster is not None and hasattr(booster, "pandas_categorical"):
        return {**_numbers(names), **_lightgbm_categories(booster, names)}
    if _is_sklearn(reader) and not _is_function(reader):
        return _numbers(names)
    return {}


def _numbers(names: list[str]) -> Kinds:
    return {name: {"kind": "number"} for name in names}


def _is_sklearn(step: Any) -> bool:
    return type(step).__module__.split(".")[0] in ("sklearn", "imblearn")


def _is_function(step: Any) -> bool:
    return type(step).__name__ == "FunctionTransformer"


def _is_dict_vectorizer(step: Any) -> bool:
    return type(step).__name__ == "DictVectorizer" and hasattr(step, "vocabulary_")


def _column_transformer_kinds(ct: Any, names: list[str]) -> Kinds:
    kinds: Kinds = {}
    indices = getattr(ct, "_transformer_to_input_indices", {})
    for name, transformer, _ in ct.transformers_:
        columns = [names[i] for i in indices.get(name, []) if i < len(names)]
        kinds.update(_transformer_kinds(transformer, columns))
    return kinds


def _transformer_kinds(transformer: Any, columns: list[str]) -> Kinds:
    """What one of a ColumnTransformer's transformers declares about its columns."""
    if isinstance(transformer, str):  # "drop" or "passthrough"
        note = NOTE_DROPPED if transformer == "drop" else NOTE_PASSTHROUGH
        return {c: {"kind": AS_SENT, "kind_note": note} for c in columns}
    leaf = _leaf_with_categories(transformer)
    if leaf is not None and hasattr(leaf, "vocabulary_"):
        return {c: {"kind": "string"} for c in columns}
    if leaf is not None:
        strict = getattr(leaf, "handle_unknown", "error") == "error"
        kinds: Kinds = {}
        for column, cats in zip(columns, leaf.categories_, strict=False):
            values = known(cats)
            kinds[column] = {
                "kind": kind_of(cats, values),
                "categories": values[:MAX_CATEGORIES_LISTED],
                "strict_categories": strict and len(values) <= MAX_CATEGORIES_LISTED,
            }
        return kinds
    first = transformer
    while isinstance(getattr(first, "steps", None), list) and first.steps:
        first = first.steps[0][1]
    if _is_function(first):
        func = getattr(first, "func", None)
        if getattr(getattr(func, "func", None), "__name__", "") == "check_array":
            return _numbers(columns)  # HistGradientBoosting's own numeric columns
        note = NOTE_PASSTHROUGH if func is None else NOTE_FUNCTION
        return {c: {"kind": AS_SENT, "kind_note": note} for c in columns}
    if _is_sklearn(first):
        return _numbers(columns)
    return {c: {"kind": AS_SENT, "kind_note": NOTE_UNKNOWN} for c in columns}


def _leaf_with_categories(transformer: Any) -> Any:
    steps = getattr(transformer, "steps", None)
    candidates = [step for _, step in steps] if isinstance(steps, list) else [transformer]
    for step in candidates:
        if hasattr(step, "categories_") or hasattr(step, "vocabulary_"):
            return step
    return None


def known(categories: Any) -> list[Any]:
    """The category values, without the missing-value markers an encoder may have learnt."""
    return [
        v
        for v in plain_list(categories)
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]


def kind_of(categories: Any, values: list[Any]) -> str:
    if getattr(getattr(categories, "dtype", None), "kind", "") == "b" or (
        values and all(isinstance(v, bool) for v in values)
    ):
        return "bool"
    return "category" if any(isinstance(v, str) for v in values) else "number"


def _lightgbm_categories(booster: Any, names: list[str]) -> Kinds:
    """LightGBM fitted on pandas ``category`` columns wants them back with the training
    categories (``pandas_categorical``, in the order of ``categorical_column``): an object
    column is refused with "categorical_feature do not match"."""
    categories = getattr(booster, "pandas_categorical", None)
    positions = (getattr(booster, "params", None) or {}).get("categorical_column") or []
    if not categories or len(categories) != len(positions):
        return {}
    kinds: Kinds = {}
    for position, cats in zip(positions, categories, strict=True):
        if not isinstance(position, int) or position >= len(names):
            return {}
        values = known(list(cats))
        kinds[names[position]] = _pandas_category(kind_of(cats, values), values)
    return kinds


def _pandas_category(kind: str, values: list[Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "categories": values[:MAX_CATEGORIES_LISTED],
        # unknown values reach the model as missing, as pandas' set_categories() makes them
        "strict_categories": False,
        "dtype": "category",
    }


def _xgboost_kinds(model: Any, names: list[str]) -> Kinds:
    """XGBoost's ``feature_types``: "c" is a pandas category column (``enable_categorical``),
    which it must get back as one (an object column is refused); the rest are numbers."""
    try:
        booster = model.get_booster()
    except Exception:  # not fitted, or not XGBoost after all
        return {}
    types = list(getattr(booster, "feature_types", None) or [])
    saved = _xgboost_categories(booster)
    kinds: Kinds = {}
    for position, name in enumerate(names):
        kind = types[position] if position < len(types) else "float"
        if kind == "c":
            # categories not readable: XGBoost re-codes the categories it is sent by name
            values = saved.get(position, [])
            kinds[name] = _pandas_category(
                kind_of(values, values) if values else "category", values
            )
        else:
            kinds[name] = {"kind": "number"}
    return kinds


def _xgboost_categories(booster: Any) -> dict[int, list[Any]]:
    """The text categories XGBoost (3.x) keeps in its model, by feature position; read from
    the model's JSON (its own accessor needs pyarrow)."""
    try:
        model = json.loads(booster.save_raw("json"))
        encoded = model["learner"]["gradient_booster"]["model"]["cats"]["enc"]
    except Exception:
        return {}
    found: dict[int, list[Any]] = {}
    for position, entry in enumerate(encoded):
        offsets, values = entry.get("offsets") or [], entry.get("values") or []
        if not offsets:
            continue
        data = bytes(values)
        # offsets: where each category starts, and where the last one ends
        found[position] = [
            data[start:end].decode("utf-8", "replace") for start, end in itertools.pairwise(offsets)
        ]
    return found


def _catboost_kinds(model: Any, names: list[str]) -> Kinds:
    """CatBoost's categorical and text features take text (a missing one is refused by
    CatBoost itself, NaN as ``pd.read_csv`` gives it); the rest are numbers."""
    try:
        categorical = set(model.get_cat_feature_indices())
        text = set(getattr(model, "get_text_feature_indices", list)())
    except Exception:
        return {}
    kinds: Kinds = {}
    for position, name in enumerate(names):
        if position in categorical:
            kinds[name] = {"kind": "category"}
        elif position in text:
            kinds[name] = {"kind": "string"}
        else:
            kinds[name] = {"kind": "number"}
    return kinds


def _dict_kinds(vectorizer: Any) -> Kinds:
    """DictVectorizer's learnt names: "key=value" for a text key (a category), "key" for a
    number."""
    separator = str(getattr(vectorizer, "separator", "="))
    kinds: Kinds = {}
    for name in plain_list(vectorizer.feature_names_):
        key, sep, value = str(name).partition(separator)
        if sep:
            entry = kinds.setdefault(key, {"kind": "category", "categories": []})
            if entry["kind"] == "category":
                entry["categories"].append(value)
        else:
            kinds[key] = {"kind": "number"}
    return kinds


def statsmodels_columns(model: Any) -> Kinds | None:
    """A statsmodels formula result (``smf.ols(...).fit()``): the columns its formula reads
    from the training frame, with that frame's kinds (patsy refuses a level it never saw)."""
    inside = getattr(model, "model", None)
    formula = getattr(inside, "formula", None)
    frame = getattr(getattr(inside, "data", None), "frame", None)
    if not isinstance(formula, str) or frame is None or not hasattr(frame, "columns"):
        return None
    import re

    _, _, right = formula.partition("~")
    used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", right))
    kinds: Kinds = {}
    for column in frame.columns:
        if str(column) not in used:
            continue
        series = frame[column]
        dtype_kind = getattr(series.dtype, "kind", "O")
        if dtype_kind == "b":
            kinds[str(column)] = {"kind": "bool"}
        elif dtype_kind in "iuf":
            kinds[str(column)] = {"kind": "number"}
        else:
            values = sorted({str(v) for v in series.dropna()})
            kinds[str(column)] = {
                "kind": "category",
                "categories": values[:MAX_CATEGORIES_LISTED],
                "strict_categories": len(values) <= MAX_CATEGORIES_LISTED,
            }
    return kinds


def pin(features: list[dict[str, Any]], pins: dict[str, str]) -> None:
    """Apply the kinds the model card pins (``[features.city] kind = "category"``)."""
    for feature in features:
        kind = pins.get(feature["name"])
        if not kind:
            continue
        feature.update(kind=kind, kind_note="the model card")
        if kind in ("number", "bool", "string", "datetime"):
            for key in ("categories", "strict_categories", "dtype"):
                feature.pop(key, None)

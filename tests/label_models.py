"""Models for the labels-from-probabilities tests (issue 29, ``winserve.host.labels`` and
``forest_proba``): the allow-listed classes trained on the zoo's rows with string, integer and
bool labels, regression forests, and subclasses with their own ``predict``. In a module of
their own so a spawned model host can unpickle them (a test module's classes would drag the
test's imports into it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

from tests.zoo import _city_frame, _city_label, _city_pipeline, _city_price

TRAIN = 300
NUMBERS = ["size", "rooms"]


class OwnPredictForest(RandomForestClassifier):
    """A forest whose predict is its own (the least likely class): a subclass is never taken
    for its parent, whatever its name says."""

    def predict(self, X: Any) -> Any:
        return self.classes_.take(np.argmin(self.predict_proba(X), axis=1), axis=0)


class OwnPredictRegressor(RandomForestRegressor):
    """A regression forest whose predict is its own (the mean plus one)."""

    def predict(self, X: Any) -> Any:
        return super().predict(X) + 1.0


def frame(n: int, seed: int) -> pd.DataFrame:
    return _city_frame(n, np.random.default_rng(seed))


def _labels(kind: str, rows: pd.DataFrame) -> Any:
    rng = np.random.default_rng(1)
    if kind == "str":
        return _city_label(rows, rng)
    if kind == "int":  # three classes, numpy int64
        return np.digitize(rows["size"] + rng.normal(0, 10, len(rows)), [55.0, 85.0])
    if kind == "bool":
        return np.asarray(rows["size"] + rng.normal(0, 10, len(rows)) > 70)
    if kind == "price":  # a regression's target
        return _city_price(rows, rng)
    if kind == "prices":  # two targets
        return np.column_stack([_city_price(rows, rng), rows["rooms"] * 2.5])
    if kind == "two":  # two outputs: an int and an int of other classes
        first = np.digitize(rows["size"] + rng.normal(0, 10, len(rows)), [55.0, 85.0])
        return np.column_stack([first, (rows["rooms"] > 2).astype(int) * 7])
    raise ValueError(kind)


MAKERS: dict[str, Callable[[], Any]] = {
    "forest": lambda: RandomForestClassifier(n_estimators=25, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=25, random_state=0),
    "tree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    "extra_tree": lambda: ExtraTreeClassifier(max_depth=5, random_state=0),
    "boosting": lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0),
    "own_predict": lambda: OwnPredictForest(n_estimators=10, random_state=0),
    "regression_forest": lambda: RandomForestRegressor(n_estimators=25, random_state=0),
    "regression_extra_trees": lambda: ExtraTreesRegressor(n_estimators=25, random_state=0),
    "own_regression": lambda: OwnPredictRegressor(n_estimators=10, random_state=0),
}


def trained(maker: str, labels: str, pipeline: bool = False) -> tuple[Any, list[str]]:
    """The model fitted on TRAIN zoo rows, and the columns it takes."""
    rows = frame(TRAIN, 0)
    columns = list(rows.columns) if pipeline else NUMBERS
    estimator = MAKERS[maker]()
    model = _city_pipeline(estimator) if pipeline else estimator
    return model.fit(rows[columns], _labels(labels, rows)), columns


def save(model: Any, columns: list[str], folder: Path, name: str) -> Path:
    """The model file, with a reference sample beside it (the load checks on its rows)."""
    path = folder / f"{name}.joblib"
    joblib.dump(model, path)
    frame(200, 3)[columns].to_csv(folder / f"{name}.reference.csv", index=False)
    return path

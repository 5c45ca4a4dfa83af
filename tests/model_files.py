"""Models the tests train and write to disk (trained at test time, never committed), and the
rows they answer; shared by the test modules and ``bench/`` scripts.

- ``constant_model``: a regressor on columns a, b (``ROW``) answering one value, so that each
  version of a folder's model is told apart; ``IRIS_ROW``: a row of the iris forest's inputs.
- ``customers`` / ``customer_model``: rows with a ``customer_id`` the pipeline drops (so the
  prediction log keeps it as a key for outcomes), a classifier or a regressor on a and b.
- ``friedman`` / ``forest``: y = f(x) + noise (Friedman's first function) and the 30-tree
  forest regressor of the checked swap's regressor tests.
- ``churn_files``: the zoo's churn pipeline (categories, missing values) and its
  ``.reference.csv``, for explanations and drift.
- ``month_model``: a pipeline fitted on a ``datetime64[ns]`` column, read by the notebook's own
  function (``MONTH_CODE``), for date columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from tests import zoo

IRIS_ROW = {
    "sepal length (cm)": 5.0,
    "sepal width (cm)": 3.0,
    "petal length (cm)": 1.5,
    "petal width (cm)": 0.2,
}
ROW = {"a": 1.0, "b": 2.0}  # constant_model's columns

TRAIN = 1000  # friedman rows a forest is trained on
REFERENCE = 560  # the user's reference rows (issue 26)
NOISE = 0.08  # of y's standard deviation


def constant_model(path: Path, value: float) -> Path:
    """A regressor on columns a, b that answers ``value``: each version is told apart."""
    from sklearn.dummy import DummyRegressor

    frame = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]})
    model = DummyRegressor(strategy="constant", constant=value).fit(frame, [0.0, 0.0])
    joblib.dump(model, path)
    return path


def customers(rows: int, seed: int) -> pd.DataFrame:
    """Rows with an id the models ignore, and two numbers they use."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + rows),
            "a": rng.normal(size=rows).round(3),
            "b": rng.normal(size=rows).round(3),
        }
    )


def customer_model(regressor: bool = False) -> Any:
    """A pipeline that takes customer_id and drops it (so the log keeps it, as a key), a
    logistic regression on a and b (classes 0 and 1), or a linear regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = customers(200, 0)
    noise = np.random.default_rng(1).normal(scale=0.8, size=len(frame))
    target: Any = frame.a + frame.b + noise
    if not regressor:
        target = (target > 0).astype(int)
    step = LinearRegression() if regressor else LogisticRegression()
    columns = ColumnTransformer([("numbers", "passthrough", ["a", "b"])])  # the id dropped
    return Pipeline([("columns", columns), ("model", step)]).fit(frame, target)


def friedman(rows: int, seed: int) -> tuple[Any, Any]:
    """Friedman's first function of 10 inputs (5 unused), its noise NOISE of y's spread."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(rows, 10))
    f = (
        10 * np.sin(np.pi * x[:, 0] * x[:, 1])
        + 20 * (x[:, 2] - 0.5) ** 2
        + 10 * x[:, 3]
        + 5 * x[:, 4]
    )
    return x, f + rng.normal(scale=NOISE * f.std(), size=rows)


def forest(seed: int) -> Any:
    """The 30-tree forest regressor a user retrained with a new seed (issue 26), unfitted."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=30, random_state=seed)


def churn_files(folder: Path, name: str = "churn", seed: int = 11) -> Any:
    """The zoo's churn pipeline as ``<name>.joblib`` in ``folder``, its reference sample of 300
    rows beside it; returns the zoo's case (its model and rows)."""
    case = zoo.imputer_pipeline()
    joblib.dump(case.model, folder / f"{name}.joblib")
    reference = zoo._mixed_frame(300, np.random.default_rng(seed))
    reference.to_csv(folder / f"{name}.reference.csv", index=False)
    return case


MONTH_CODE = '''def month_of(frame):
    """The notebook's own function: the month of a datetime64 column."""
    return frame["when"].dt.month.to_numpy().reshape(-1, 1)
'''


def month_model() -> zoo.Case:
    """A pipeline fitted on a ``datetime64[ns]`` column, read with ``.dt`` (issue 22)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(MONTH_CODE, namespace)  # as the notebook defined it: a function of __main__
    rng = np.random.default_rng(7)
    days = rng.integers(0, 700, 120)
    train = pd.DataFrame(
        {
            "when": pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D"),
            "spend": rng.normal(50, 20, 120),
        }
    ).astype({"when": "datetime64[ns]"})  # as the new user's frame (pandas 3 makes "us")
    assert train["when"].dtype == "datetime64[ns]"
    model = make_pipeline(
        ColumnTransformer(
            [("month", FunctionTransformer(namespace["month_of"]), ["when"])],
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=500),
    ).fit(train, np.where(train["when"].dt.month > 6, "late", "early"))
    return zoo.Case("months", model, train.head(5), code=MONTH_CODE)

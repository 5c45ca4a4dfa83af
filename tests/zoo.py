"""A zoo of ordinary models, trained at test time, each with the rows a user would score in a
notebook: ``Case.rows`` is a DataFrame (or, for a text model, a list of texts) and the
in-process answers are the model's own ``predict``/``predict_proba``/scores on exactly that.

Each kind here is one that winserve once served wrongly or not at all (issue 12): missing
numbers and categories through imputers, a model fitted on a NumPy array with NaN, a raw-text
pipeline, LightGBM with a pandas ``category`` column, a multi-output regressor, a clusterer,
an outlier detector, bool columns; and class labels that are strings, integers and bools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ROWS = 24  # rows scored per case: enough to hold every kind of value, few enough to be quick
SEED = 7


@dataclass
class Case:
    name: str
    model: Any
    rows: Any  # a DataFrame, or a list of texts for a text model
    proba: bool = False
    scores: str = ""  # decision_function or score_samples, when offered
    text: bool = False  # the model takes one text per row
    named: bool = True  # fitted on a DataFrame (column names known)

    @property
    def n_rows(self) -> int:
        return len(self.rows)


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def _mixed_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 60, n).astype(float),
            "spend": rng.normal(50, 20, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    frame.loc[rng.random(n) < 0.15, "spend"] = np.nan
    frame.loc[rng.random(n) < 0.15, "plan"] = np.nan
    frame.loc[rng.random(n) < 0.1, "tenure"] = np.nan
    return frame


def _churn(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    score = frame["tenure"].fillna(30) / 30 - frame["spend"].fillna(50) / 50
    score = score + (frame["plan"] == "pro") + rng.normal(0, 0.5, len(frame))
    return np.where(score > 0.3, "leaves", "stays")


def imputer_pipeline() -> Case:
    """SimpleImputer on numbers and on a category column, then one-hot and a classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = _rng()
    frame = _mixed_frame(400, rng)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["tenure", "spend"]),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["plan", "region"],
                ),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame, _churn(frame, rng))
    rows = _mixed_frame(ROWS, _rng())
    return Case("imputer_pipeline", model, rows, proba=True, scores="decision_function")


def array_with_nan() -> Case:
    """HistGradientBoosting fitted on a plain NumPy array holding NaN; integer class labels."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = _rng()
    x = rng.normal(size=(400, 5))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) > 0).astype(int) + (x[:, 2] > 1)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    rows = rng.normal(size=(ROWS, 5))
    rows[rng.random(rows.shape) < 0.2] = np.nan
    frame = pd.DataFrame(rows, columns=[f"x{i}" for i in range(5)])
    return Case("array_with_nan", model, frame, proba=True, scores="decision_function", named=False)


TEXTS = [
    "great product, works well",
    "terrible, broke after a day",
    "works as described",
    "awful support and slow delivery",
    "excellent value for money",
    "not worth it, poor quality",
    "love it, would buy again",
    "bad experience, refund requested",
]


def text_pipeline() -> Case:
    """TfidfVectorizer + classifier fitted on a list of strings (one text per row)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    labels = ["good", "bad"] * (len(TEXTS) // 2)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS * 5, labels * 5)
    rows = [*TEXTS, "works, great", "poor, slow, bad", "a text with no known word"]
    return Case("text_pipeline", model, rows, proba=True, scores="decision_function", text=True)


def lightgbm_category() -> Case:
    """LightGBM on a pandas ``category`` column (the usual recipe), numbers with NaN."""
    import lightgbm

    rng = _rng()
    frame = _mixed_frame(400, rng).drop(columns=["region"])
    frame["plan"] = frame["plan"].astype("category")
    model = lightgbm.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1)
    model.fit(frame, _churn(frame, rng))
    rows = _mixed_frame(ROWS, _rng()).drop(columns=["region"])
    rows["plan"] = pd.Categorical(rows["plan"], categories=frame["plan"].cat.categories)
    return Case("lightgbm_category", model, rows, proba=True, scores="decision_function")


def multi_output_regressor() -> Case:
    """A forest predicting two targets at once: each prediction is a list of two numbers."""
    from sklearn.ensemble import RandomForestRegressor

    rng = _rng()
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    targets = np.column_stack([frame["a"] * 2 + frame["b"], frame["c"] - frame["a"]])
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(frame, targets)
    rows = pd.DataFrame(rng.normal(size=(ROWS, 3)), columns=["a", "b", "c"])
    return Case("multi_output_regressor", model, rows)


def clusterer() -> Case:
    from sklearn.cluster import KMeans

    rng = _rng()
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["height", "weight"])
    model = KMeans(n_clusters=3, n_init=3, random_state=0).fit(frame)
    rows = pd.DataFrame(rng.normal(size=(ROWS, 2)), columns=["height", "weight"])
    return Case("clusterer", model, rows)


def outlier_detector() -> Case:
    from sklearn.ensemble import IsolationForest

    rng = _rng()
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["amount", "hour"])
    model = IsolationForest(n_estimators=30, random_state=0).fit(frame)
    rows = pd.DataFrame(rng.normal(0, 2, size=(ROWS, 2)), columns=["amount", "hour"])
    return Case("outlier_detector", model, rows, scores="decision_function")


def bool_pipeline() -> Case:
    """A bool column one-hot encoded beside a number; the class labels are bools too."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = _rng()

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"amount": rng.normal(size=n), "member": rng.random(n) > 0.5})

    train = frame(300)
    labels = (train["amount"] + train["member"] + rng.normal(0, 0.3, 300)) > 0.5
    model = make_pipeline(
        ColumnTransformer([("flag", OneHotEncoder(), ["member"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(train, labels)
    return Case("bool_pipeline", model, frame(ROWS), proba=True, scores="decision_function")


def bool_column_boosting() -> Case:
    """HistGradientBoosting on a DataFrame with int, bool and float columns: no encoder
    declares the bool column, so it is a number column (true/false, True/False cells)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = _rng()

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "children": rng.integers(0, 4, n),
                "member": rng.random(n) > 0.5,
                "price": rng.normal(90, 20, n),
            }
        )

    train = frame(300)
    labels = np.where(train["member"] & (train["price"] > 85), "A", "B")
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(train, labels)
    return Case("bool_column_boosting", model, frame(ROWS), proba=True, scores="decision_function")


BUILDERS: dict[str, Callable[[], Case]] = {
    builder.__name__: builder
    for builder in (
        imputer_pipeline,
        array_with_nan,
        text_pipeline,
        lightgbm_category,
        multi_output_regressor,
        clusterer,
        outlier_detector,
        bool_pipeline,
        bool_column_boosting,
    )
}


def expected(case: Case) -> dict[str, Any]:
    """The model's own answers on the case's rows, as plain data."""
    rows = case.rows if case.text else (case.rows if case.named else case.rows.to_numpy())
    answers: dict[str, Any] = {"predictions": np.asarray(case.model.predict(rows)).tolist()}
    if case.proba:
        answers["probabilities"] = case.model.predict_proba(rows).tolist()
        answers["classes"] = case.model.classes_.tolist()
    if case.scores:
        answers["scores"] = np.asarray(getattr(case.model, case.scores)(rows)).tolist()
    return answers


def records(case: Case) -> list[Any]:
    """The rows as JSON would carry them (NaN → null)."""
    if case.text:
        return list(case.rows)
    frame = case.rows.astype(object).where(case.rows.notna(), None)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value

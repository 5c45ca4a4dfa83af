"""A zoo of ordinary models, trained at test time, each with the rows a user would score in a
notebook: ``Case.rows`` is a DataFrame (or, for a text model, a list of texts) and the
in-process answers are the model's own ``predict``/``predict_proba``/scores on exactly that.

Each kind here is one that winserve once served wrongly or not at all (issue 12): missing
numbers and categories through imputers, a model fitted on a NumPy array with NaN, a raw-text
pipeline, LightGBM with a pandas ``category`` column, a multi-output regressor, a clusterer,
an outlier detector, bool columns; and class labels that are strings, integers and bools.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    records_input: bool = False  # the model takes a list of dicts (DictVectorizer)
    code: str = ""  # <name>_code.py beside the model: the notebook's own functions
    card: str = ""  # <name>.toml beside the model
    factory: str = ""  # served with --factory (the model is what it returns)
    # per column, the kind /model must show (issue 22: read through the model's wrappers)
    kinds: dict[str, str] | None = None

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


# -- issue 22: models whose column kinds are read through wrappers ---------------------------
CITIES = ["Paris", "Lyon", "Lille", "Nantes"]


def _city_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Numbers (``size`` with gaps) and a text category column ``city``, no missing city."""
    frame = pd.DataFrame(
        {
            "size": rng.normal(70, 25, n),
            "rooms": rng.integers(1, 6, n).astype(float),
            "city": rng.choice(CITIES, n),
        }
    )
    frame["city"] = frame["city"].astype(object)
    return frame


def _city_label(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    score = frame["size"] / 70 + (frame["city"] == "Paris") - frame["rooms"] / 4
    return np.where(score + rng.normal(0, 0.3, len(frame)) > 0.6, "dear", "cheap")


def _city_price(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    factor = frame["city"].map({"Paris": 3.0, "Lyon": 2.0, "Lille": 1.5, "Nantes": 1.7})
    return np.asarray(frame["size"] * factor * 1000 + rng.normal(0, 500, len(frame)))


def _city_pipeline(final: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), ["size", "rooms"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ]
        ),
        final,
    )


def _scores(model: Any) -> str:
    """The score winserve offers for ``model`` (its decision_function, when it has one)."""
    from winserve.model_info import SCORE_METHODS

    return next((m for m in SCORE_METHODS if callable(getattr(model, m, None))), "")


CITY_KINDS = {"size": "number", "rooms": "number", "city": "category"}


def search_pipeline() -> Case:
    """GridSearchCV around a DataFrame pipeline with a OneHotEncoder (issue 22)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    rng = _rng()
    frame = _city_frame(200, rng)
    search = GridSearchCV(
        _city_pipeline(LogisticRegression()), {"logisticregression__C": [0.1, 1.0]}, cv=2
    )
    model = search.fit(frame, _city_label(frame, rng))
    rows = _city_frame(ROWS, _rng())
    return Case("search_pipeline", model, rows, proba=True, scores=_scores(model), kinds=CITY_KINDS)


def target_transformed() -> Case:
    """TransformedTargetRegressor around a pipeline with categories (issue 22)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import Ridge

    rng = _rng()
    frame = _city_frame(200, rng)
    model = TransformedTargetRegressor(
        regressor=_city_pipeline(Ridge()), func=np.log1p, inverse_func=np.expm1
    ).fit(frame, np.abs(_city_price(frame, rng)))
    return Case("target_transformed", model, _city_frame(ROWS, _rng()), kinds=CITY_KINDS)


def calibrated_pipeline() -> Case:
    """CalibratedClassifierCV around a pipeline with categories (issue 22)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    rng = _rng()
    frame = _city_frame(200, rng)
    model = CalibratedClassifierCV(_city_pipeline(LogisticRegression()), cv=2)
    model.fit(frame, _city_label(frame, rng))
    return Case(
        "calibrated_pipeline", model, _city_frame(ROWS, _rng()), proba=True, kinds=CITY_KINDS
    )


def soft_voting() -> Case:
    """Soft voting over two pipelines with categories (issue 22)."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    rng = _rng()
    frame = _city_frame(200, rng)
    model = VotingClassifier(
        [
            ("lr", _city_pipeline(LogisticRegression())),
            ("tree", _city_pipeline(DecisionTreeClassifier(max_depth=3, random_state=0))),
        ],
        voting="soft",
    ).fit(frame, _city_label(frame, rng))
    return Case(
        "soft_voting",
        model,
        _city_frame(ROWS, _rng()),
        proba=True,
        scores=_scores(model),
        kinds=CITY_KINDS,
    )


DATE_CODE = '''import pandas as pd


def days_before_2026(frame):
    """The notebook's own function: days from a date written as text to 2026-01-01."""
    dates = pd.to_datetime(frame.iloc[:, 0])
    return ((pd.Timestamp("2026-01-01") - dates).dt.days.to_numpy()).reshape(-1, 1)
'''


def date_function() -> Case:
    """A FunctionTransformer reading a date written as text, defined in the notebook: served
    with its ``<name>_code.py`` beside it; a column passed through and one dropped (issue 22)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(DATE_CODE, namespace)  # as the notebook defined it: a function of __main__
    rng = _rng()

    def frame(n: int) -> pd.DataFrame:
        days = rng.integers(0, 2000, n)
        return pd.DataFrame(
            {
                "signed": (pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")).strftime(
                    "%Y-%m-%d"
                ),
                "spend": rng.normal(50, 20, n),
                "note": rng.choice(["new", "old", "vip"], n),
            }
        )

    train = frame(200)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("age", FunctionTransformer(namespace["days_before_2026"]), ["signed"]),
                ("unused", "drop", ["note"]),
            ],
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=500),
    )
    model.fit(train, np.where(train["spend"] > 50, "keen", "calm"))
    rows = frame(ROWS)
    card = '[example]\\nsigned = "2024-05-01"\\nspend = 40.0\\n'
    return Case(
        "date_function",
        model,
        rows,
        proba=True,
        scores="decision_function",
        code=DATE_CODE,
        card=card,
        kinds={"signed": "any", "spend": "any", "note": "any"},
    )


def xgboost_categorical() -> Case:
    """XGBoost with ``enable_categorical`` on a pandas category column (issue 22)."""
    import xgboost

    rng = _rng()
    frame = _city_frame(200, rng)
    frame["city"] = frame["city"].astype("category")
    model = xgboost.XGBClassifier(n_estimators=8, max_depth=3, enable_categorical=True)
    labels = (_city_label(frame, rng) == "dear").astype(int)
    model.fit(frame, labels)
    rows = _city_frame(ROWS, _rng())
    rows["city"] = pd.Categorical(rows["city"], categories=frame["city"].cat.categories)
    return Case(
        "xgboost_categorical", model, rows, proba=True, scores=_scores(model), kinds=CITY_KINDS
    )


def catboost_categories() -> Case:
    """CatBoost with a text ``cat_features`` column and NaN numbers (issue 22)."""
    import catboost

    rng = _rng()
    frame = _city_frame(200, rng)
    frame.loc[rng.random(200) < 0.1, "size"] = np.nan
    model = catboost.CatBoostClassifier(
        iterations=20,
        depth=3,
        verbose=0,
        cat_features=["city"],
        allow_writing_files=False,
        random_seed=0,
        thread_count=1,
    )
    model.fit(frame, _city_label(frame.fillna(70), rng))
    rows = _city_frame(ROWS, _rng())
    rows.loc[[2, 5], "size"] = np.nan
    return Case(
        "catboost_categories", model, rows, proba=True, scores=_scores(model), kinds=CITY_KINDS
    )


def boosting_from_dtype_search() -> Case:
    """HistGradientBoosting, ``categorical_features="from_dtype"``, inside RandomizedSearchCV."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import RandomizedSearchCV

    rng = _rng()
    frame = _city_frame(200, rng)
    frame["city"] = frame["city"].astype("category")
    search = RandomizedSearchCV(
        HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0),
        {"max_iter": [10, 20]},
        n_iter=2,
        cv=2,
        random_state=0,
    )
    model = search.fit(frame, _city_label(frame, rng))
    rows = _city_frame(ROWS, _rng())
    rows["city"] = pd.Categorical(rows["city"], categories=frame["city"].cat.categories)
    return Case(
        "boosting_from_dtype_search",
        model,
        rows,
        proba=True,
        scores=_scores(model),
        kinds=CITY_KINDS,
    )


def dict_vectorizer() -> Case:
    """DictVectorizer + classifier fitted on a list of dicts (issue 22)."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = _rng()
    frame = _city_frame(200, rng)
    model = make_pipeline(DictVectorizer(sparse=False), LogisticRegression(max_iter=500))
    model.fit(frame.to_dict(orient="records"), _city_label(frame, rng))
    # the columns in the order DictVectorizer learnt them (sorted), which rows as lists follow
    rows = _city_frame(ROWS, _rng())[["city", "rooms", "size"]]
    return Case(
        "dict_vectorizer",
        model,
        rows,
        proba=True,
        scores=_scores(model),
        records_input=True,
        kinds=CITY_KINDS,
    )


def imbalanced_pipeline() -> Case:
    """An imbalanced-learn Pipeline (a sampler between the encoders and the model)."""
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.pipeline import Pipeline
    from sklearn.linear_model import LogisticRegression

    rng = _rng()
    frame = _city_frame(200, rng)
    inner = _city_pipeline(LogisticRegression())
    model = Pipeline(
        [
            ("columns", inner.steps[0][1]),
            ("over", RandomOverSampler(random_state=0)),
            ("model", inner.steps[1][1]),
        ]
    ).fit(frame, _city_label(frame, rng))
    return Case(
        "imbalanced_pipeline",
        model,
        _city_frame(ROWS, _rng()),
        proba=True,
        scores=_scores(model),
        kinds=CITY_KINDS,
    )


def statsmodels_formula_result() -> Any:
    """The factory ``--factory tests.zoo:statsmodels_formula_result`` serves: an OLS fitted
    with a formula on a DataFrame (the same every call)."""
    import statsmodels.formula.api as smf

    rng = _rng()
    frame = _city_frame(200, rng)
    frame["price"] = _city_price(frame, rng)
    return smf.ols("price ~ size + rooms + C(city)", data=frame).fit()


def statsmodels_formula() -> Case:
    """A statsmodels formula result handed over by a factory (issue 22)."""
    model = statsmodels_formula_result()
    rows = _city_frame(ROWS, _rng())
    return Case(
        "statsmodels_formula",
        model,
        rows,
        factory="tests.zoo:statsmodels_formula_result",
        kinds=CITY_KINDS,
    )


class DtypeEcho:
    """A model object that declares its column names and nothing else: it answers, per row,
    each column's dtype and value as it got them (what winserve hands a model, issue 22)."""

    feature_names_in_ = np.array(["a", "b", "c"], dtype=object)
    n_features_in_ = 3

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.array(
            [
                " ".join(f"{c}:{frame[c].dtype}={frame[c].iloc[i]}" for c in frame.columns)
                for i in range(len(frame))
            ],
            dtype=object,
        )


def dtype_echo() -> DtypeEcho:
    return DtypeEcho()


def dict_vectorizer_model() -> Any:
    return dict_vectorizer().model


ISSUE_22 = {
    "search_pipeline",
    "target_transformed",
    "calibrated_pipeline",
    "soft_voting",
    "date_function",
    "xgboost_categorical",
    "catboost_categories",
    "boosting_from_dtype_search",
    "dict_vectorizer",
    "imbalanced_pipeline",
    "statsmodels_formula",
}


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
        search_pipeline,
        target_transformed,
        calibrated_pipeline,
        soft_voting,
        date_function,
        xgboost_categorical,
        catboost_categories,
        boosting_from_dtype_search,
        dict_vectorizer,
        imbalanced_pipeline,
        statsmodels_formula,
    )
}


def expected(case: Case) -> dict[str, Any]:
    """The model's own answers on the case's rows, as plain data."""
    rows = case.rows if case.text else (case.rows if case.named else case.rows.to_numpy())
    if case.records_input:
        rows = case.rows.to_dict(orient="records")
    answers: dict[str, Any] = {"predictions": np.asarray(case.model.predict(rows)).tolist()}
    if case.proba:
        answers["probabilities"] = case.model.predict_proba(rows).tolist()
        answers["classes"] = case.model.classes_.tolist()
    if case.scores:
        answers["scores"] = np.asarray(getattr(case.model, case.scores)(rows)).tolist()
    return answers


def save(case: Case, folder: Path) -> list[str]:
    """The model's files in ``folder`` as a data scientist leaves them (the model, its card,
    its ``_code.py``), and the arguments that serve it."""
    if case.factory:
        return ["--factory", case.factory]
    import joblib

    path = folder / f"{case.name}.joblib"
    if case.card:
        (folder / f"{case.name}.toml").write_text(case.card, encoding="utf-8")
    if case.code:
        (folder / f"{case.name}_code.py").write_text(case.code, encoding="utf-8")
    main = sys.modules["__main__"]
    notebook = _main_functions(case.model)
    for name, function in notebook.items():  # pickled as the notebook's __main__ functions
        setattr(main, name, function)
    try:
        joblib.dump(case.model, path)
    finally:
        for name in notebook:
            delattr(main, name)
    return [str(path)]


def _main_functions(model: Any) -> dict[str, Any]:
    """The functions of ``__main__`` a model holds (a FunctionTransformer's ``func``)."""
    found: dict[str, Any] = {}
    for value in model.get_params(deep=True).values() if hasattr(model, "get_params") else []:
        if callable(value) and getattr(value, "__module__", "") == "__main__":
            found[value.__name__] = value
    return found


def records(case: Case) -> list[Any]:
    """The rows as JSON would carry them (NaN → null)."""
    if case.text:
        return list(case.rows)
    frame = case.rows.astype(object).where(case.rows.notna(), None)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value

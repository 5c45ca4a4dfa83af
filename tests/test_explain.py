"""Explanations and what-if curves (issue 25), without processes: the Shapley engine
(``winserve.host.explain``) over plain functions and real scikit-learn models, the model host's
``explain`` / ``whatif`` in this process, and the reference sample's reading."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from tests import zoo
from winserve.host import explain, reference
from winserve.host.model_host import ModelHost
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(120)

EXACT = 1e-9  # additivity and exactness of exact enumeration: rounding only
# Permutation sampling's error on the 14-input model with three- and four-way interactions
# below, as a share of the sum of |contributions| (measured: 0.015 with the default budget)
PERMUTATION_BOUND = 0.05


def additive(found: explain.Explanation, tolerance: float = EXACT) -> None:
    total = found.baseline + sum(found.contributions.values())
    assert total == pytest.approx(found.output, abs=tolerance)


def first_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:1].reset_index(drop=True)


def linear_case() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """A linear regression fitted on standardised inputs, its reference and a row."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 5)), columns=[f"x{i}" for i in range(5)])
    frame = (frame - frame.mean()) / frame.std()
    target = frame.to_numpy() @ np.array([3.0, -2.0, 0.5, 0.0, 1.5]) + rng.normal(size=300)
    model = LinearRegression().fit(frame, target)
    row = pd.DataFrame([[1.2, -0.7, 2.0, 0.3, -1.1]], columns=frame.columns)
    return model, frame.iloc[:120].reset_index(drop=True), row


def test_linear_regression_contribution_is_coefficient_times_distance_to_the_mean() -> None:
    model, background, row = linear_case()
    found = explain.shapley(row, background, model.predict)
    assert found.method == "exact"
    mean = background.mean()
    for j, name in enumerate(background.columns):
        expected = model.coef_[j] * (row[name].iloc[0] - mean[name])
        assert found.contributions[name] == pytest.approx(expected, abs=EXACT)
    assert found.baseline == pytest.approx(float(model.predict(background).mean()), abs=EXACT)
    assert found.output == pytest.approx(float(model.predict(row)[0]), abs=EXACT)
    additive(found)


def test_forest_contributions_add_up_to_the_prediction() -> None:
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(200, 6)), columns=list("abcdef"))
    target = frame["a"] * frame["b"] + np.sin(frame["c"]) + (frame["d"] > 0)
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(frame, target)
    found = explain.shapley(first_row(frame), frame, model.predict)
    assert found.method == "exact"
    assert found.output == pytest.approx(float(model.predict(first_row(frame))[0]), abs=EXACT)
    additive(found)
    # e and f play no part in the target: the forest gives them little
    small = max(abs(found.contributions["e"]), abs(found.contributions["f"]))
    assert small < max(abs(v) for v in found.contributions.values()) / 3


SHAP = 1e-6  # winserve's exact Shapley values against shap's interventional TreeExplainer


def forest_case() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(200, 6)), columns=list("abcdef"))
    target = frame["a"] * frame["b"] + np.sin(frame["c"]) + (frame["d"] > 0)
    return frame, target


def shap_values(model: Any, background: pd.DataFrame, row: pd.DataFrame, **options: Any) -> Any:
    """shap's interventional TreeExplainer on the same background: the reference answer."""
    with warnings.catch_warnings():  # shap's imports (matplotlib's colormaps) warn at import
        warnings.simplefilter("ignore")
        import shap

    found = shap.TreeExplainer(
        model, data=background, feature_perturbation="interventional", **options
    )
    return np.asarray(found.shap_values(row)), found


def test_forest_contributions_equal_shaps_interventional_tree_explainer() -> None:
    from sklearn.ensemble import RandomForestRegressor

    frame, target = forest_case()
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(frame, target)
    background = frame.iloc[:60].reset_index(drop=True)
    for at in (100, 150, 199):
        row = frame.iloc[at : at + 1].reset_index(drop=True)
        found = explain.shapley(row, background, model.predict)
        assert found.method == "exact" and found.background_rows == 60  # all of it: no sampling
        expected, explainer = shap_values(model, background, row)
        for j, name in enumerate(frame.columns):
            assert found.contributions[name] == pytest.approx(expected[0, j], abs=SHAP)
        assert found.baseline == pytest.approx(float(explainer.expected_value), abs=SHAP)


def test_a_classifiers_explanation_through_the_host_equals_shaps_for_the_predicted_class(
    tmp_path: Path,
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    frame, target = forest_case()
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(frame, target > 1)
    background = frame.iloc[:60].reset_index(drop=True)
    host = host_for(tmp_path, model, background)  # the reference file beside the model
    rows = frame.iloc[120:124].reset_index(drop=True)
    answer = host.explain(columns_of(rows), {})
    assert answer["ok"], answer
    expected, _ = shap_values(model, background, rows, model_output="probability")
    classes = list(model.classes_)
    for i, found in enumerate(answer["explanations"]):
        assert found["explained"] == "probability"
        k = classes.index(found["class"])
        assert found["class"] == model.predict(rows.iloc[i : i + 1])[0]
        for j, name in enumerate(frame.columns):
            assert found["contributions"][name] == pytest.approx(expected[i, j, k], abs=SHAP)


def interactions(frame: pd.DataFrame) -> np.ndarray:
    x = frame.to_numpy(dtype=np.float64)
    return x.sum(axis=1) + 2 * x[:, 0] * x[:, 1] * x[:, 2] + x[:, 3] * x[:, 4] * x[:, 5] * x[:, 6]


def test_permutation_sampling_is_within_its_bound_of_the_exact_values() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(16, 14)), columns=[f"c{i}" for i in range(14)])
    row = pd.DataFrame([rng.normal(size=14) * 2], columns=frame.columns)
    sampled = explain.shapley(row, frame, interactions)
    assert sampled.method == "permutation" and sampled.model_rows <= explain.MAX_ROWS
    exact = explain.exact(row, frame, interactions, max_rows=2**14 * len(frame))
    assert exact.background_rows == sampled.background_rows == len(frame)
    additive(exact)
    additive(sampled)  # each permutation telescopes: the sum is exact, the sharing estimated
    scale = sum(abs(v) for v in exact.contributions.values())
    error = max(abs(sampled.contributions[k] - exact.contributions[k]) for k in frame.columns)
    assert error <= PERMUTATION_BOUND * scale, (error, scale)
    # a fixed seed: the same answer every time
    assert explain.shapley(row, frame, interactions) == sampled


def test_the_row_budget_subsamples_the_background_reproducibly() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(2000, 8)), columns=list("abcdefgh"))
    found = explain.shapley(first_row(frame), frame, interactions_8)
    assert found.model_rows <= explain.MAX_ROWS
    assert found.background_rows == explain.MAX_ROWS // 2**8
    additive(found)
    assert explain.shapley(first_row(frame), frame, interactions_8) == found


def interactions_8(frame: pd.DataFrame) -> np.ndarray:
    x = frame.to_numpy(dtype=np.float64)
    return x.sum(axis=1) + x[:, 0] * x[:, 1]


# -- the model host, in this process ------------------------------------------------------


def host_for(tmp_path: Path, model: Any, reference_rows: pd.DataFrame | None) -> ModelHost:
    path = tmp_path / "churn.joblib"
    joblib.dump(model, path)
    if reference_rows is not None:
        reference_rows.to_csv(tmp_path / "churn.reference.csv", index=False)
    host = ModelHost()
    loaded = host.load(ModelSpec(path=str(path)))
    assert loaded["ok"], loaded
    return host


def columns_of(frame: pd.DataFrame) -> dict[str, Any]:
    return {"columns": {c: frame[c].tolist() for c in frame.columns}}


def test_a_pipeline_with_categories_and_missing_values_is_explained_in_the_users_columns(
    tmp_path: Path,
) -> None:
    case = zoo.imputer_pipeline()
    reference_rows = zoo._mixed_frame(300, np.random.default_rng(11))
    host = host_for(tmp_path, case.model, reference_rows)
    assert host.info()["extra"]["reference"] == {"rows": 300, "source": "churn.reference.csv"}
    rows = case.rows
    missing = rows[rows.isna().any(axis=1)].head(2)
    assert len(missing) == 2  # rows with a missing value in some column
    answer = host.explain(columns_of(missing), {})
    assert answer["ok"], answer
    probabilities = case.model.predict_proba(missing)
    predicted = case.model.predict(missing)
    classes = list(case.model.classes_)
    for i, found in enumerate(answer["explanations"]):
        assert list(found["contributions"]) == ["tenure", "spend", "plan", "region"]
        assert found["explained"] == "probability" and found["class"] == predicted[i]
        expected = probabilities[i, classes.index(predicted[i])]
        assert found["output"] == pytest.approx(expected, abs=EXACT)
        total = found["baseline"] + sum(found["contributions"].values())
        assert total == pytest.approx(found["output"], abs=EXACT)


def test_whatif_curves_are_the_models_predictions_of_the_swept_rows(tmp_path: Path) -> None:
    case = zoo.imputer_pipeline()
    reference_rows = zoo._mixed_frame(300, np.random.default_rng(11))
    host = host_for(tmp_path, case.model, reference_rows)
    row = first_row(case.rows)
    answer = host.whatif(columns_of(row), {"columns": ["spend", "plan"]})
    assert answer["ok"], answer
    spend, plan = answer["curves"]
    assert spend["column"] == "spend" and 2 < len(spend["values"]) <= explain.WHATIF_POINTS
    assert spend["values"] == sorted(spend["values"])
    assert sorted(plan["values"]) == ["basic", "plus", "pro"]
    for curve in (spend, plan):
        swept = pd.concat([row] * len(curve["values"]), ignore_index=True)
        swept[curve["column"]] = curve["values"]
        assert curve["predictions"] == case.model.predict(swept).tolist()
        assert np.allclose(curve["probabilities"], case.model.predict_proba(swept), atol=EXACT)


def test_without_a_reference_sample_the_answer_says_what_file_to_add(tmp_path: Path) -> None:
    model, _, row = linear_case()
    host = host_for(tmp_path, model, None)
    assert host.info()["extra"]["reference"] is None
    answer = host.explain({"matrix": row.to_numpy()}, {})
    assert not answer["ok"] and answer["error"]["type"] == "NoReference"
    assert "churn.reference.csv" in answer["error"]["message"]
    assert (
        'df.sample(1000).to_csv("churn.reference.csv", index=False)' in (answer["error"]["message"])
    )
    # predictions as before
    assert host.predict({"matrix": row.to_numpy()}, False)["ok"]


# -- reading the reference sample ---------------------------------------------------------

FEATURES = [
    {"name": "size", "kind": "number"},
    {"name": "city", "kind": "category"},
]


def test_a_semicolon_file_with_decimal_commas_is_read_as_excel_wrote_it(tmp_path: Path) -> None:
    path = tmp_path / "m.reference.csv"
    path.write_text("city;size;other\nParis;1,5;x\nLyon;NA;y\n;2,25;z\n", encoding="utf-8-sig")
    frame = reference.read(path, FEATURES)
    assert list(frame.columns) == ["size", "city"]
    assert frame["size"].tolist()[0] == 1.5 and np.isnan(frame["size"].tolist()[1])
    assert frame["city"].tolist()[:2] == ["Paris", "Lyon"] and pd.isna(frame["city"][2])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("size,town\n1,Paris\n", "no column 'city'"),
        ("size,city\n1,Paris\nbig,Lyon\n", "column 'size' holds 'big' on row 2, not a number"),
        ("size,city\n", "no rows"),
    ],
)
def test_a_reference_that_cannot_be_used_says_why(tmp_path: Path, text: str, says: str) -> None:
    model_path = tmp_path / "m.joblib"
    (tmp_path / "m.reference.csv").write_text(text, encoding="utf-8")
    found = reference.load(str(model_path), FEATURES)
    assert found is not None and found.frame is None
    assert says in found.problem and found.problem.startswith("m.reference.csv cannot be used")


def test_a_large_reference_is_sampled_reproducibly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rows = pd.DataFrame({"size": rng.normal(size=5000), "city": rng.choice(["a", "b"], 5000)})
    rows.to_csv(tmp_path / "m.reference.csv", index=False)
    first = reference.load(str(tmp_path / "m.joblib"), FEATURES)
    again = reference.load(str(tmp_path / "m.joblib"), FEATURES)
    assert first is not None and again is not None
    assert len(first.frame) == reference.MAX_ROWS
    pd.testing.assert_frame_equal(first.frame, again.frame)


def test_an_explanation_past_its_time_stops_and_says_so(tmp_path: Path) -> None:
    """The host stops short of the pool's deadline (``seconds``), which would kill the
    replica, and says how many rows it explained; the web process answers 504."""
    from winserve import explaining
    from winserve.errors import ModelTimeout

    model, background, row = linear_case()
    host = host_for(tmp_path, model, background)
    answer = host.explain({"matrix": row.to_numpy()}, {"seconds": 0.0})
    assert not answer["ok"] and answer["error"]["type"] == "ExplainTooSlow"
    assert (
        "longer than 0 s" in answer["error"]["message"]
        and "0 explained" in (answer["error"]["message"])
    )
    with pytest.raises(ModelTimeout, match="ask for fewer rows"):
        explaining.answer(answer)
    assert host.explain({"matrix": row.to_numpy()}, {"seconds": 30.0})["ok"]


def test_the_model_card_can_name_the_reference_sample(tmp_path: Path) -> None:
    from winserve import card

    (tmp_path / "data").mkdir()
    rows = pd.DataFrame({"size": [1.0, 2.0, 3.0], "city": ["a", "b", "a"]})
    rows.to_csv(tmp_path / "data" / "sample.csv", index=False)
    (tmp_path / "m.toml").write_text('reference = "data/sample.csv"\n', encoding="utf-8")
    found = card.load(tmp_path / "m.joblib")
    assert found.problem == "" and Path(found.reference) == tmp_path / "data" / "sample.csv"
    named = reference.load(str(tmp_path / "m.joblib"), FEATURES, found.reference)
    assert named is not None and named.describe() == {"rows": 3, "source": "sample.csv"}
    gone = reference.load(str(tmp_path / "m.joblib"), FEATURES, str(tmp_path / "no.csv"))
    assert gone is not None and gone.frame is None
    assert gone.problem == "the model card names no.csv (reference), not found"


def test_a_parquet_reference_is_read_and_a_broken_one_says_why(
    tmp_path: Path,
) -> None:
    pytest.importorskip("pyarrow")  # in the test extra (a user without it is told to add it)
    rows = pd.DataFrame({"size": [1.5, None, 3.0], "city": ["Paris", "Lyon", None]})
    rows.to_parquet(tmp_path / "m.reference.parquet")
    found = reference.load(str(tmp_path / "m.joblib"), FEATURES)
    assert found is not None and found.problem == "" and found.source == "m.reference.parquet"
    assert found.frame["size"].tolist()[0] == 1.5 and np.isnan(found.frame["size"].tolist()[1])
    assert found.frame["city"].tolist()[:2] == ["Paris", "Lyon"]
    (tmp_path / "m.reference.parquet").write_bytes(b"PAR1 not really")
    broken = reference.load(str(tmp_path / "m.joblib"), FEATURES)
    assert broken is not None and broken.frame is None
    assert "not a readable Parquet file" in broken.problem


def test_a_model_with_several_outputs_per_row_is_refused_with_the_reason(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    from winserve import explaining
    from winserve.errors import WinserveError

    _, background, row = linear_case()
    two = LinearRegression().fit(background, np.c_[background["x0"], background["x1"]])
    host = host_for(tmp_path, two, background)
    answer = host.explain({"matrix": row.to_numpy()}, {})
    assert not answer["ok"]
    with pytest.raises(WinserveError, match="2 outputs per row") as raised:
        explaining.answer(answer)
    assert raised.value.status == 409  # the model's nature, not the request's fault


def days_and_income(frame: pd.DataFrame) -> pd.DataFrame:
    """A user's own date step: ``pd.to_datetime`` infers one format for the whole column."""
    days = (pd.to_datetime(frame["signup"]) - pd.Timestamp("2020-01-01")).dt.days
    return pd.DataFrame({"days": days.astype(float), "income": frame["income"].astype(float)})


def test_a_datetime_column_of_the_sample_reaches_the_model_as_the_rows_do(tmp_path: Path) -> None:
    """The sample's dates are handed over as the request path hands a row's (ISO text): an
    explanation mixes both in one column, and a model parsing dates with one inferred format
    refused the mix for every row (a new user's trial, ``kind = "datetime"`` in the card)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(5)
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, 200), unit="D")
    rows = pd.DataFrame({"signup": signup.strftime("%Y-%m-%d"), "income": rng.normal(50, 9, 200)})
    target = (pd.to_datetime(rows["signup"]) - pd.Timestamp("2020-01-01")).dt.days * 0.1
    model = make_pipeline(FunctionTransformer(days_and_income), LinearRegression())
    model.fit(rows, target + rows["income"])
    path = tmp_path / "churn.joblib"
    joblib.dump(model, path)
    rows.to_csv(tmp_path / "churn.reference.csv", index=False)  # dates as 2023-03-30
    host = ModelHost()
    loaded = host.load(ModelSpec(path=str(path), kinds={"signup": "datetime"}))
    assert loaded["ok"], loaded
    row = {"columns": {"signup": ["2023-08-15T00:00:00"], "income": [62.0]}}  # as the web sends
    answer = host.explain(row, {})
    assert answer["ok"], answer
    found = answer["explanations"][0]
    assert list(found["contributions"]) == ["signup", "income"]
    total = found["baseline"] + sum(found["contributions"].values())
    assert total == pytest.approx(found["output"], abs=EXACT)

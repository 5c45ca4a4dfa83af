"""Column kinds come from the model, never a guess (issue 22, DESIGN decision 12).

What each zoo model's wrappers declare (``winserve.host.columns``); a column no step declares
("any") reaches the model as pandas would type it: a JSON value as ``pd.DataFrame(records)``
keeps it, a CSV column as ``pd.read_csv`` reads it; the model card pins a kind; CatBoost gets
a missing category as NaN and refuses it, named by row and column; ``winserve check`` says
which columns' kinds it does not know, and how to pin them.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests import zoo
from tests.helpers import local_client, winserve_check
from tests.model_files import month_model
from winserve.card import parse
from winserve.cells import typed_like_read_csv
from winserve.host import describe
from winserve.host.model_host import ModelHost
from winserve.model_info import ModelSpec

WRAPPED = [name for name, build in zoo.BUILDERS.items() if name in zoo.ISSUE_22]


@pytest.mark.parametrize("name", WRAPPED)
def test_kinds_are_read_through_the_wrappers(name: str) -> None:
    case = zoo.BUILDERS[name]()
    found = describe.describe(case.model)
    assert {f["name"]: f["kind"] for f in found["features"]} == case.kinds
    assert found["feature_names_known"]


def test_what_a_column_transformer_passes_drops_or_hands_to_a_function() -> None:
    notes = {
        f["name"]: f["kind_note"] for f in describe.describe(zoo.date_function().model)["features"]
    }
    assert notes == {
        "signed": "read by a FunctionTransformer",
        "spend": "passed through by the model's ColumnTransformer",
        "note": "dropped by the model's ColumnTransformer",
    }


def test_an_encoder_first_on_the_whole_frame_declares_its_columns() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"city": ["Paris", "Lyon"] * 5, "size": ["s", "m", "l", "s", "m"] * 2})
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(frame, [0, 1] * 5)
    kinds = {f["name"]: f["kind"] for f in describe.describe(model)["features"]}
    assert kinds == {"city": "category", "size": "category"}


def test_an_encoder_after_an_imputer_declares_its_columns() -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"city": ["Paris", "Lyon", None, "Lille"] * 5})
    model = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(), LogisticRegression()
    ).fit(frame, [0, 1] * 10)
    (city,) = describe.describe(model)["features"]
    assert city["kind"] == "category" and city["categories"] == ["Lille", "Lyon", "Paris"]


def test_xgboost_categories_are_its_own() -> None:
    case = zoo.xgboost_categorical()
    city = describe.describe(case.model)["features"][2]
    assert city["dtype"] == "category"
    assert city["categories"] == list(case.rows["city"].cat.categories)


@pytest.mark.parametrize(
    "cells",
    [
        ["1", "2", "3"],
        ["1", "", "3"],
        ["1.5", "-2", "1e3"],
        ["True", "False", ""],
        ["Paris", "", "3"],
        ["", "", ""],
        ["2024-01-02", "2024-02-03", "NA"],
    ],
)
def test_csv_cells_of_an_unknown_kind_are_typed_as_read_csv_types_them(cells: list[str]) -> None:
    text = "c\n" + "\n".join(f'"{c}"' if c else "" for c in cells) + "\n"
    want = pd.read_csv(io.StringIO(text), skip_blank_lines=False)["c"]
    na = {"", "NA"}
    got = pd.Series(typed_like_read_csv([math.nan if c in na else c for c in cells]))
    assert got.dtype.kind == want.dtype.kind, (got.dtype, want.dtype)
    assert got.isna().tolist() == want.isna().tolist()
    assert [v for v in got if v == v] == [v for v in want if v == v]


def test_a_workbooks_typed_cells_of_an_unknown_kind_are_kept_as_read_excel_hands_them() -> None:
    """A workbook's numbers and booleans arrive typed (scoring/workbook.py): they were all
    taken for missing values, so a pipeline whose columns' kind is unknown got none of them."""
    assert typed_like_read_csv([-1.103, 2.0, math.nan]) == [
        -1.103,
        2.0,
        pytest.approx(math.nan, nan_ok=True),
    ]
    assert typed_like_read_csv([1, True, None])[:2] == [1, True]
    assert math.isnan(typed_like_read_csv([1, True, None])[2])
    assert typed_like_read_csv([1.5, "2", math.nan])[:2] == [1.5, 2.0]  # text typed, number kept


def _echo_client(**settings: Any) -> Any:
    return local_client(ModelSpec(factory="tests.zoo:dtype_echo", **settings))


def test_json_values_keep_their_json_type_as_in_a_dataframe_of_records() -> None:
    records = [{"a": "3", "b": 2, "c": None}, {"a": "x", "b": 2.5, "c": True}]
    answer = _echo_client().post("/predict", json=records)
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == zoo.dtype_echo().predict(pd.DataFrame(records)).tolist()


def test_csv_values_are_typed_as_read_csv_types_them() -> None:
    text = "a,b,c\n3,2,\n4,2.5,True\n"
    answer = _echo_client().post("/invocations", data=text, content_type="text/csv")
    assert answer.status_code == 200, answer.json
    want = zoo.dtype_echo().predict(pd.read_csv(io.StringIO(text))).tolist()
    assert answer.json["predictions"] == want


def test_the_card_pins_a_kind() -> None:
    card = parse({"features": {"a": {"kind": "number"}, "c": {"kind": "text"}}})
    assert card.kinds == {"a": "number", "c": "string"}
    with pytest.raises(ValueError, match="kind must be one of category, number, text, bool"):
        parse({"features": {"a": {"kind": "float"}}})
    record = ModelHost().load(ModelSpec(factory="tests.zoo:dtype_echo", kinds=card.kinds))
    assert record["ok"], record
    kinds = {f["name"]: (f["kind"], f.get("kind_note")) for f in record["info"]["features"]}
    assert kinds == {
        "a": ("number", "the model card"),
        "b": ("any", "no step of the model declares its kind"),
        "c": ("string", "the model card"),
    }
    client = _echo_client(kinds=card.kinds)
    answer = client.post("/predict", json=[{"a": "3", "b": 2, "c": 4}])
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == ["a:float64=3.0 b:int64=2 c:object=4"]
    refused = client.post(
        "/predict", json=[{"a": 1, "b": 1, "c": "x"}, {"a": "x", "b": 1, "c": "y"}]
    )
    assert refused.status_code == 400
    assert "row 2, column 'a': expected a number, got 'x'" in refused.json["error"]["message"]


def test_catboost_gets_a_missing_category_as_nan_and_its_refusal_names_row_and_column(
    tmp_path: Path,
) -> None:
    case = zoo.catboost_categories()
    (path,) = zoo.save(case, tmp_path)
    client = local_client(ModelSpec(path))
    model = client.get("/model").json
    city = next(f for f in model["features"] if f["name"] == "city")
    assert city["missing"] == "refused" and "NaN" in city["missing_reason"]
    with pytest.raises(Exception, match="cat_feature"):  # the model itself refuses it
        case.model.predict(pd.read_csv(io.StringIO("size,rooms,city\n50,2,\n")))
    text = "size,rooms,city\n50,2,Paris\n,3,\n"
    answer = client.post("/invocations", data=text, content_type="text/csv")
    assert answer.status_code == 400
    assert "row 2, column 'city': missing value" in answer.json["message"]
    good = pd.read_csv(io.StringIO("size,rooms,city\n50,2,Paris\n,3,Lyon\n"))
    answer = client.post("/predict?proba=true", json=zoo.records(zoo.Case("c", None, good)))
    assert answer.status_code == 200, answer.json
    want = case.model.predict_proba(good)
    assert np.allclose(answer.json["probabilities"], want, rtol=0, atol=1e-9)


@pytest.mark.spawn
def test_check_says_which_kinds_it_does_not_know_and_how_to_pin_them(tmp_path: Path) -> None:
    case = zoo.date_function()
    case.card = ""  # no example row: the sample asks the date as text, then as a number
    (path,) = zoo.save(case, tmp_path)
    done = winserve_check(Path(path))
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stdout.splitlines() if "WARNING" in line]
    assert len(warnings) == 2, done.stdout  # signed and spend; the dropped note is moot
    assert "column 'signed': read by a FunctionTransformer" in warnings[0]
    assert '[features.signed] kind = "category"' in warnings[0]
    # every kind a card may pin, "datetime" too (a new user's trial: it was left out)
    assert '(or "number", "text", "bool", "datetime")' in warnings[0]
    assert "date_function.toml" in warnings[0]
    assert done.stdout.rstrip().splitlines()[-1].startswith("OK")


@pytest.mark.spawn
def test_check_fails_a_model_that_answers_no_row_of_its_columns(tmp_path: Path) -> None:
    """A model that cannot answer the row winserve makes (text where no kind is known, then
    numbers) is not reported OK: check exits 1 and says to add an [example] row."""
    case = zoo.date_function()
    case.card = '[example]\nsigned = "not a date"\n'
    (path,) = zoo.save(case, tmp_path)
    done = winserve_check(Path(path))
    assert done.returncode == 1, done.stdout
    assert "FAILED" in done.stdout and "[example]" in done.stdout


def test_a_dict_vectorizer_gets_dicts() -> None:
    case = zoo.dict_vectorizer()
    client = local_client(ModelSpec(factory="tests.zoo:dict_vectorizer_model"))
    rows = zoo.records(case)
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == case.model.predict(rows).tolist()
    assert np.asarray(case.model.predict(rows)).shape == (len(rows),)


# --- issue 22 follow-ups: a new user's trial from a fresh clone ---


MONTH_CARD = '[example]\nwhen = "2024-05-01"\nspend = 40.0\n'


def test_the_card_kind_datetime_and_toml_dates_in_the_example() -> None:
    card = parse({"features": {"when": {"kind": "datetime"}}, "example": {}})
    assert card.kinds == {"when": "datetime"}
    import tomllib

    read = parse(tomllib.loads("[example]\nwhen = 2024-05-01T10:30:00\nday = 2024-05-02\n"))
    # as a JSON or CSV row would send them: the sample asks what real rows ask
    assert read.example == {"when": "2024-05-01T10:30:00", "day": "2024-05-02"}


def test_a_datetime_column_gets_datetime64_and_a_bad_date_is_a_400(tmp_path: Path) -> None:
    case = month_model()
    (path,) = zoo.save(case, tmp_path)
    client = local_client(ModelSpec(path, kinds={"when": "datetime"}))
    model = client.get("/model").json
    assert {f["name"]: f["kind"] for f in model["features"]}["when"] == "datetime"
    rows = [
        {"when": "2024-03-01", "spend": 40.0},
        {"when": "2024-11-30T23:59:00", "spend": 60.0},
    ]
    want = case.model.predict(pd.DataFrame(rows).astype({"when": "datetime64[ns]"})).tolist()
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == want
    text = "when,spend\n2024-03-01,40\n2024-11-30 23:59,60\n"
    answer = client.post("/invocations", data=text, content_type="text/csv")
    assert answer.status_code == 200, answer.json
    frame = pd.read_csv(io.StringIO(text))
    frame["when"] = pd.to_datetime(frame["when"], format="mixed")  # each cell as it reads one
    assert answer.json["predictions"] == case.model.predict(frame).tolist()
    bad = client.post("/predict", json=[rows[0], {"when": "31 Febtember", "spend": 1.0}])
    assert bad.status_code == 400
    assert "row 2, column 'when': expected a date and time" in bad.json["error"]["message"]
    number = client.post("/predict", json=[{"when": 5, "spend": 1.0}])
    assert number.status_code == 400 and "row 1, column 'when'" in number.json["error"]["message"]


def test_a_datetime_column_in_the_schemas_and_on_the_form() -> None:
    from winserve.card import DATETIME_HINT, FeatureDoc, ModelCard, form_fields
    from winserve.model_info import Feature, ModelInfo
    from winserve.tools import value_schema

    feature = Feature(name="when", kind="datetime")
    schema = value_schema(feature)
    assert schema["format"] == "date-time" and schema["type"] == ["string", "null"]
    info = ModelInfo(
        name="m", model_type="t", task="unknown", features=[feature], feature_names_known=True
    )
    card = ModelCard(
        example={"when": "2024-05-01T10:30:00"}, features={"when": FeatureDoc(kind="datetime")}
    )
    (field,) = form_fields(card, info)
    assert (field.kind, field.value) == ("text", "2024-05-01T10:30:00")
    assert DATETIME_HINT in field.help


@pytest.mark.spawn
@pytest.mark.server
def test_a_real_server_answers_a_datetime_column_as_the_notebook(tmp_path: Path) -> None:
    import requests

    from tests.helpers import running_server

    case = month_model()
    case.card = MONTH_CARD + '\n[features.when]\nkind = "datetime"\n'
    (path,) = zoo.save(case, tmp_path)
    rows = [{"when": "2024-03-01", "spend": 40.0}, {"when": "2024-09-15 08:00", "spend": 9}]
    frame = pd.DataFrame(rows).astype({"when": "datetime64[ns]"})
    with running_server([path], cwd=tmp_path) as server:
        answer = requests.post(f"{server.url}/predict", json=rows, timeout=30)
        assert answer.status_code == 200, answer.text
        spec = requests.get(f"{server.url}/openapi.json", timeout=30).text
    assert answer.json()["predictions"] == case.model.predict(frame).tolist()
    assert '"date-time"' in spec


@pytest.mark.spawn
def test_check_suggests_kind_datetime_where_the_model_reads_dates(tmp_path: Path) -> None:
    """A string [example] for a datetime64 column: no example row can help, the kind can."""
    case = month_model()
    case.card = MONTH_CARD
    (path,) = zoo.save(case, tmp_path)
    done = winserve_check(Path(path))
    assert done.returncode == 1, done.stdout
    assert ".dt accessor" in done.stdout
    assert '[features.when] kind = "datetime"' in done.stdout
    assert "[features.spend]" not in done.stdout  # a number in the example: no date
    assert "correct the [example]" not in done.stdout
    (tmp_path / "months.toml").write_text(MONTH_CARD + '\n[features.when]\nkind = "datetime"\n')
    done = winserve_check(Path(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.spawn
def test_check_says_why_the_card_was_not_used_when_the_sample_fails(tmp_path: Path) -> None:
    case = month_model()
    case.card = MONTH_CARD + '\n[features.when]\nkind = "date"\n'
    (path,) = zoo.save(case, tmp_path)
    done = winserve_check(Path(path))
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    card_line = next(i for i, line in enumerate(lines) if "was not used: " in line)
    assert "kind must be one of category, number, text, bool, datetime" in lines[card_line]
    assert card_line < next(i for i, line in enumerate(lines) if line.startswith("FAILED"))


def test_predict_takes_the_split_format_pandas_writes() -> None:
    import json

    frame = pd.DataFrame({"a": ["3", "x"], "b": [2, 3], "c": [None, True]})
    body = json.loads(frame.to_json(orient="split"))
    assert "index" in body
    client = _echo_client()
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.json
    records = client.post("/predict", json=frame.to_dict(orient="records"))
    assert answer.json["predictions"] == records.json["predictions"]
    refused = client.post("/predict", json={**body, "dtypes": {}})
    assert refused.status_code == 400 and "'dtypes'" in refused.json["error"]["message"]


def test_xgboost_is_named_as_what_answers() -> None:
    import xgboost

    case = zoo.xgboost_categorical()
    assert describe.describe(case.model)["runtime"] == f"xgboost {xgboost.__version__}"
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wrapped = make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=2))
    wrapped.fit(np.arange(20.0).reshape(10, 2), np.arange(10.0))
    assert describe.describe(wrapped)["runtime"].startswith("xgboost ")
    plain = make_pipeline(StandardScaler()).fit(np.ones((3, 2)))
    assert describe.describe(plain)["runtime"] == "scikit-learn"
    page = local_client(ModelSpec(factory="tests.test_columns:xgboost_model")).get("/").text
    assert f"<dt>Answered by</dt><dd>xgboost {xgboost.__version__}</dd>" in page
    assert "<dt>scikit-learn</dt>" not in page


def xgboost_model() -> Any:
    return zoo.xgboost_categorical().model


def test_a_number_sent_to_a_text_category_is_refused_as_the_model_refuses_it() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"zip": ["01000", "75001", "69001", "13001"] * 5})
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    model.fit(frame, [0, 1, 0, 1] * 5)
    rows = [{"zip": "75001"}, {"zip": 1000}]
    with pytest.raises(TypeError):  # the notebook's own answer for that row on its own
        model.predict(pd.DataFrame(rows[1:]))
    # (in a batch with text beside it the encoder reads it as unseen: a row's answer must
    # not depend on its neighbours, so winserve refuses it always, naming it)
    client = local_client(ModelSpec(factory="tests.test_columns:zip_model"))
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 400
    message = answer.json["error"]["message"]
    assert "row 2, column 'zip': expected text" in message and "'01000'" in message
    good = client.post("/predict", json=[{"zip": "75001"}, {"zip": "1000"}])
    assert good.status_code == 200, good.json  # as text, an unseen value: the model answers
    assert good.json["predictions"] == model.predict(pd.DataFrame(good_rows())).tolist()


def good_rows() -> list[dict[str, str]]:
    return [{"zip": "75001"}, {"zip": "1000"}]


def zip_model() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"zip": ["01000", "75001", "69001", "13001"] * 5})
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    return model.fit(frame, [0, 1, 0, 1] * 5)


class DateParts:
    """A user's own first step, as data scientists write them: no ``feature_names_in_``, so the
    pipeline says nothing of its columns."""

    def fit(self, frame: pd.DataFrame, y: Any = None) -> DateParts:
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns=["signup"])
        out["month"] = pd.to_datetime(frame["signup"]).dt.month
        return out


def test_a_model_silent_on_its_columns_takes_them_from_the_card(tmp_path: Path) -> None:
    """A pipeline whose first step is the user's own transformer declares no columns: the
    card's [features.<name>] tables name them, in order, and rows reach it as a DataFrame, as
    in the notebook (a new user's trial: every row was refused, and the card was too)."""
    import joblib
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        {
            "signup": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 365, 300), unit="D"),
            "plan": rng.choice(["basic", "pro"], 300),
            "income": rng.normal(50, 10, 300),
        }
    )
    target = (rows["plan"] == "pro") & (rows["signup"].dt.month > 6)
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]), remainder="passthrough"
    )
    model = make_pipeline(DateParts(), encode, HistGradientBoostingClassifier(max_iter=20))
    model.fit(rows, target)
    path = tmp_path / "dates.joblib"
    joblib.dump(model, path)
    card = parse(
        {
            "features": {
                "signup": {"kind": "datetime"},
                "plan": {"kind": "category"},
                "income": {"kind": "number"},
            }
        },
        "dates.toml",
    )
    client = local_client(ModelSpec(str(path), kinds=card.kinds))
    described = client.get("/model").json
    assert [f["name"] for f in described["features"]] == ["signup", "plan", "income"]
    sent = [
        {"signup": "2023-09-15", "plan": "pro", "income": 61.0},
        {"signup": "2023-02-01", "plan": "basic", "income": 40.0},
    ]
    answer = client.post("/predict", json=sent)
    assert answer.status_code == 200, answer.json
    frame = pd.DataFrame(sent).astype({"signup": "datetime64[ns]"})
    assert answer.json["predictions"] == model.predict(frame).tolist()
    csv = "signup,plan,income\n2023-09-15,pro,61\n2023-02-01,basic,40\n"
    answer = client.post("/invocations", data=csv, content_type="text/csv")
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == model.predict(frame).tolist()

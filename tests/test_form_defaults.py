"""The form starts where nobody has chosen anything (issue 22): a drop-down whose column takes
a missing value starts on its empty *missing* choice, not on the first category ("Lille"), and
a number field stays empty; a drop-down whose column refuses a missing value starts on its
first choice. A form sent as it starts is answered as the model answers those values."""

from __future__ import annotations

import re
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.helpers import csrf_token, local_client
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    rng = np.random.default_rng(5)
    n = 120
    frame = pd.DataFrame(
        {
            "city": rng.choice(["Lille", "Lyon", "Nantes"], n),
            "plan": rng.choice(["basic", "pro"], n),
            "age": rng.normal(40, 10, n).round(),
        }
    )
    target = (frame["age"] + (frame["plan"] == "pro") * 5).to_numpy()
    model = make_pipeline(
        ColumnTransformer(
            [
                ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),  # missing: zeros
                ("plan", OneHotEncoder(handle_unknown="error"), ["plan"]),  # missing: refused
                ("age", SimpleImputer(), ["age"]),
            ]
        ),
        Ridge(),
    ).fit(frame, target)
    path = tmp_path_factory.mktemp("form") / "shop.joblib"
    joblib.dump(model, path)
    return model, local_client(ModelSpec(str(path)))


def _selected(page: str, label: str) -> str:
    fid = re.search(rf'<label for="(f\d+)">{label}\b', page)
    assert fid, label
    field = re.search(rf'<select id="{fid.group(1)}"[^>]*>(.*?)</select>', page, re.S)
    assert field, label
    chosen = re.search(r'<option value="([^"]*)" selected>', field.group(1))
    assert chosen, field.group(1)
    return chosen.group(1)


def test_a_drop_down_that_takes_missing_starts_on_missing(shop: tuple[Any, Any]) -> None:
    model, client = shop
    described = {f["name"]: f for f in client.get("/model").get_json()["features"]}
    assert described["city"]["missing"] == "accepted"
    assert described["plan"]["missing"] == "refused"
    page = client.get("/").get_data(as_text=True)
    assert _selected(page, "city") == ""  # (missing), not "Lille"
    assert _selected(page, "plan") == "basic"  # refuses missing: its first choice
    age = re.search(r'<input id="f2" name="f2" type="text" value="([^"]*)"', page)
    assert age and age.group(1) == ""
    form = {"f0": "", "f1": "basic", "f2": "", "csrf_token": csrf_token(page)}
    sent = client.post("/", data=form)
    assert sent.status_code == 200, sent.get_data(as_text=True)[-2000:]
    shown = re.search(r'<strong id="prediction">([^<]*)</strong>', sent.get_data(as_text=True))
    row = pd.DataFrame({"city": [np.nan], "plan": ["basic"], "age": [np.nan]}).astype(
        {"city": object}
    )
    assert shown and float(shown.group(1)) == pytest.approx(float(model.predict(row)[0]))


def _reference(rng: np.random.Generator, n: int = 200) -> pd.DataFrame:
    """A sample whose typical row is plain to see: Lyon and pro most frequent, ages around 52."""
    frame = pd.DataFrame(
        {
            "city": rng.choice(["Lille", "Lyon", "Nantes"], n, p=[0.2, 0.5, 0.3]),
            "plan": rng.choice(["basic", "pro"], n, p=[0.3, 0.7]),
            "age": rng.normal(52, 8, n).round(1),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan  # left out of the median
    frame.loc[rng.random(n) < 0.1, "city"] = np.nan
    return frame


def test_the_form_starts_from_the_reference_samples_typical_row(
    shop: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 25: with ``shop.reference.csv`` beside the model, a number field starts on the
    sample's median and a drop-down on its most frequent value (read back from the CSV as
    pandas reads it), and the form sent as it starts is answered as the model answers that
    row; a column of the card's ``[example]`` keeps the card's value."""
    model, _ = shop
    folder = tmp_path_factory.mktemp("typical")
    joblib.dump(model, folder / "shop.joblib")
    _reference(np.random.default_rng(8)).to_csv(folder / "shop.reference.csv", index=False)
    written = pd.read_csv(folder / "shop.reference.csv")
    median = float(written["age"].median())
    city = written["city"].value_counts().idxmax()
    plan = written["plan"].value_counts().idxmax()
    assert (city, plan) == ("Lyon", "pro")

    client = local_client(ModelSpec(str(folder / "shop.joblib")))
    page = client.get("/").get_data(as_text=True)
    assert _selected(page, "city") == city  # not (missing): the sample's most frequent
    assert _selected(page, "plan") == plan  # not the first choice, "basic"
    age = re.search(r'<input id="f2" name="f2" type="text" value="([^"]*)"', page)
    assert age and float(age.group(1)) == median
    low, high = (round(float(written["age"].quantile(q)), 2) for q in (0.05, 0.95))
    shown_range = f"usually between {low:g} and {high:g} (reference sample)"
    assert shown_range in page  # the field's hint: a range, never a limit on what is sent

    form = {"f0": city, "f1": plan, "f2": age.group(1), "csrf_token": csrf_token(page)}
    sent = client.post("/", data=form)
    assert sent.status_code == 200, sent.get_data(as_text=True)[-2000:]
    shown = re.search(r'<strong id="prediction">([^<]*)</strong>', sent.get_data(as_text=True))
    row = pd.DataFrame({"city": [city], "plan": [plan], "age": [median]})
    assert shown and float(shown.group(1)) == pytest.approx(float(model.predict(row)[0]))

    (folder / "shop.toml").write_text('[example]\nage = 33\ncity = "Nantes"\n', "utf-8")
    model_file = folder / "shop.joblib"
    carded = local_client(ModelSpec(str(model_file)), model=model_file)  # the card beside it
    page = carded.get("/").get_data(as_text=True)
    assert _selected(page, "city") == "Nantes"  # the card's example wins
    assert _selected(page, "plan") == plan  # a column the example leaves out: the sample's
    age = re.search(r'<input id="f2" name="f2" type="text" value="([^"]*)"', page)
    assert age and age.group(1) == "33"

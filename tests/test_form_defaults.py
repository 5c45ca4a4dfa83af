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

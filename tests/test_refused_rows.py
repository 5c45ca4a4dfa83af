"""Rows the model itself would refuse are refused, named by row and column, whatever the batch's
shape (issue 22): a number beyond float32's range reaches a forest's own check (scikit-learn's
``assume_finite`` shortcut is only taken for numbers every model takes), and a bad row in a
batch of records, of lists or of split columns is isolated and named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from tests.conftest import iris_frame
from tests.helpers import local_client
from winserve.host.model_host import ModelHost
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(120)

TOO_LARGE = 1e300  # finite in float64, an infinity in float32


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, pd.DataFrame]:
    x, y = iris_frame()
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    path = tmp_path_factory.mktemp("refused") / "forest.joblib"
    joblib.dump(model, path)
    return path, model, x


def _models_own_error(model: Any, frame: pd.DataFrame) -> str:
    with pytest.raises(ValueError) as raised, np.errstate(over="ignore"):
        model.predict(frame)
    return str(raised.value)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_number_beyond_float32_gets_the_forests_own_error_with_its_column(
    forest: tuple[Path, Any, pd.DataFrame],
) -> None:
    from winserve.backends.replica import wire_payload

    path, model, x = forest
    host = ModelHost()
    assert host.load(ModelSpec(str(path)))["ok"]
    rows = x.iloc[:3].copy()
    rows.iloc[1, 2] = TOO_LARGE
    own = _models_own_error(model, rows)
    assert "too large" in own
    answer = host.predict(wire_payload({"matrix": rows.to_numpy()}), False)
    assert not answer["ok"] and answer["error"]["input_error"]
    assert [row for row, _ in answer["isolated"]["errors"]] == [1]
    message = answer["isolated"]["errors"][0][1]["message"]
    assert own in message and repr(x.columns[2]) in message
    # the good rows are answered as the model answers them
    expected = model.predict(x.iloc[[0, 2]]).tolist()
    assert [answer["isolated"]["predictions"][i] for i in (0, 2)] == expected
    # within float32's range, a forest answers as in the notebook
    rows.iloc[1, 2] = 3e38
    fine = host.predict(wire_payload({"matrix": rows.to_numpy()}), False)
    assert fine["ok"] and fine["predictions"] == model.predict(rows).tolist()


def test_a_float64_model_still_answers_a_large_number(tmp_path: Path) -> None:
    """1e300 is the forest's problem, not winserve's: a logistic regression takes it."""
    x, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(x, y)
    path = tmp_path / "lr.joblib"
    joblib.dump(model, path)
    client = local_client(ModelSpec(str(path)))
    row = x.iloc[:1].copy()
    row.iloc[0, 0] = TOO_LARGE
    answer = client.post("/predict", json=row.to_dict("records"))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"] == model.predict(row).tolist()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("shape", ["records", "lists", "split", "mlflow", "oip"])
def test_the_row_the_model_refuses_is_named_in_every_batch_shape(
    forest: tuple[Path, Any, pd.DataFrame], shape: str
) -> None:
    path, model, x = forest
    rows = x.iloc[:4].copy()
    rows.iloc[2, 3] = -TOO_LARGE
    column = x.columns[3]
    client = local_client(ModelSpec(str(path)))
    lists = rows.to_numpy().tolist()
    url, body = {
        "records": ("/predict", rows.to_dict("records")),
        "lists": ("/predict", lists),
        "split": ("/predict", {"columns": list(x.columns), "data": lists}),
        "mlflow": (
            "/invocations",
            {"dataframe_split": {"columns": list(x.columns), "data": lists}},
        ),
        "oip": (
            "/v2/models/forest/infer",
            {"inputs": [{"name": "input-0", "shape": [4, 4], "datatype": "FP64", "data": lists}]},
        ),
    }[shape]
    answer = client.post(url, json=body)
    assert answer.status_code == 400, answer.get_json()
    payload = answer.get_json()
    message = payload.get("message") or payload.get("error")
    if isinstance(message, dict):
        message = message["message"]
    assert "row 3:" in message and repr(column) in message, message
    assert _models_own_error(model, rows.iloc[[2]]) in message

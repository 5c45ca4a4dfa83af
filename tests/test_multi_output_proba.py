"""A multi-output classifier answers ``?proba=true`` with a probability list per output (issue
22): ``classes`` holds each output's classes, ``probabilities`` each row's list per output, as
the model's own ``predict_proba`` (one array per output) gives them. The page, CSV scoring,
MLflow and OIP keep offering predictions only (their formats have one list of classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier

from tests.conftest import iris_frame
from tests.helpers import local_client
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(120)


def _targets(species: pd.Series, x: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"species": species, "wide": np.where(x.iloc[:, 1] > 3.0, "yes", "no")})


@pytest.mark.parametrize(
    "make",
    [
        lambda: MultiOutputClassifier(LogisticRegression(max_iter=1000)),
        lambda: RandomForestClassifier(n_estimators=5, random_state=0),  # multi-output natively
    ],
    ids=["MultiOutputClassifier", "RandomForestClassifier"],
)
def test_probabilities_per_output_equal_the_models_own(tmp_path: Path, make: Any) -> None:
    x, species = iris_frame()
    y = _targets(species, x)
    model = make().fit(x, y)
    path = tmp_path / "multi.joblib"
    joblib.dump(model, path)
    client = local_client(ModelSpec(str(path)))
    rows = x.iloc[[0, 60, 120]]
    answer = client.post("/predict?proba=true", json=rows.to_dict("records"))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["predictions"] == model.predict(rows).tolist()
    assert body["classes"] == [c.tolist() for c in model.classes_]
    own = model.predict_proba(rows)  # one array per output
    assert len(body["probabilities"]) == len(rows)
    for row, per_output in enumerate(body["probabilities"]):
        assert len(per_output) == 2
        for output, probabilities in enumerate(per_output):
            np.testing.assert_allclose(probabilities, own[output][row])
    plain = client.post("/predict", json=rows.to_dict("records")).get_json()
    assert set(plain) == {"predictions"}
    # the formats with one list of classes keep offering predictions only
    assert client.get("/model").get_json()["has_proba"] is False
    oip = client.get("/v2/models/multi").get_json()
    assert [o["name"] for o in oip["outputs"]] == ["predict"]

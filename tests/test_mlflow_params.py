"""``/invocations`` answers with the method MLflow's server would use (issue 22): an MLflow
folder's ``predict_fn``, and ``params.predict_method`` only where MLflow applies params at
all, a signature whose params schema declares it; without one, params are ignored, as
``mlflow models serve`` (3.x) ignores them. The folders are written as ``mlflow.sklearn``
writes them (MLmodel, model.pkl), without MLflow."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tests.conftest import iris_frame
from tests.helpers import local_client
from winserve.model_info import ModelSpec

yaml = pytest.importorskip("yaml")
pytestmark = pytest.mark.timeout(120)

PREDICT_METHOD = {"name": "predict_method", "type": "string", "default": "predict", "shape": None}


def _folder(where: Path, model: Any, columns: list[str], *, predict_fn: str, params: Any) -> Path:
    where.mkdir()
    (where / "model.pkl").write_bytes(pickle.dumps(model))
    inputs = [{"name": c, "type": "double", "required": True} for c in columns]
    mlmodel = {
        "flavors": {
            "python_function": {
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": predict_fn,
            },
            "sklearn": {"pickled_model": "model.pkl", "serialization_format": "pickle"},
        },
        "signature": {
            "inputs": json.dumps(inputs),
            "outputs": None,
            "params": json.dumps(params) if params is not None else None,
        },
    }
    (where / "MLmodel").write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
    return where


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, Any]:
    x, y = iris_frame()
    return LogisticRegression(max_iter=1000).fit(x, y), x


def _invoke(client: Any, rows: Any, params: Any = None) -> Any:
    body: dict[str, Any] = {
        "dataframe_split": json.loads(rows.to_json(orient="split", index=False))
    }
    if params is not None:
        body["params"] = params
    return client.post("/invocations", json=body)


def test_a_params_schema_declaring_predict_method_applies_it(
    tmp_path: Path, fitted: tuple[Any, Any]
) -> None:
    model, x = fitted
    folder = _folder(
        tmp_path / "with params",
        model,
        list(x.columns),
        predict_fn="predict",
        params=[PREDICT_METHOD],
    )
    client = local_client(ModelSpec(str(folder)))
    rows = x.iloc[[0, 70, 140]]
    proba = _invoke(client, rows, {"predict_method": "predict_proba"})
    assert proba.status_code == 200, proba.json
    np.testing.assert_allclose(proba.json["predictions"], model.predict_proba(rows))
    for params in (None, {}, {"other": 1}):  # the schema's default: predict
        answer = _invoke(client, rows, params)
        assert answer.json == {"predictions": model.predict(rows).tolist()}
    wrong = _invoke(client, rows, {"predict_method": "fit"})
    assert wrong.status_code == 400
    assert wrong.json["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "predict_method" in wrong.json["message"]


@pytest.mark.parametrize("params", [None, [{"name": "temperature", "type": "double"}]])
def test_without_predict_method_in_a_params_schema_params_are_ignored(
    tmp_path: Path, fitted: tuple[Any, Any], params: Any
) -> None:
    model, x = fitted
    folder = _folder(
        tmp_path / "plain", model, list(x.columns), predict_fn="predict", params=params
    )
    client = local_client(ModelSpec(str(folder)))
    rows = x.iloc[[0, 70]]
    answer = _invoke(client, rows, {"predict_method": "predict_proba"})
    assert answer.status_code == 200, answer.json
    assert answer.json == {"predictions": model.predict(rows).tolist()}


def test_a_folder_saved_with_predict_fn_predict_proba_answers_probabilities(
    tmp_path: Path, fitted: tuple[Any, Any]
) -> None:
    """mlflow.sklearn.save_model(..., pyfunc_predict_fn="predict_proba"): MLflow's server
    answers every request with probabilities, and so does winserve's /invocations."""
    model, x = fitted
    folder = _folder(
        tmp_path / "proba", model, list(x.columns), predict_fn="predict_proba", params=None
    )
    client = local_client(ModelSpec(str(folder)))
    rows = x.iloc[[0, 140]]
    answer = _invoke(client, rows)
    np.testing.assert_allclose(answer.json["predictions"], model.predict_proba(rows))
    native = client.post("/predict", json=json.loads(rows.to_json(orient="records")))
    assert native.json["predictions"] == model.predict(rows).tolist()  # /predict: predict

"""Explanations on MLflow's ``/invocations`` and the OIP's ``infer`` (issue 25), through a real
server with spawned model hosts: a folder of ``churn`` (a pipeline with categories and missing
values, and its ``churn.reference.csv``) and ``bare`` (the same model, no reference sample).
The answers must be ``/predict?explain=true``'s, in each protocol's own shape; a model without
a reference sample is refused with ``/predict``'s 409 message in each protocol's error shape."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import joblib
import pandas as pd
import pytest
import requests

from tests import zoo
from tests.helpers import ServerProcess, check_explanations, records, running_server
from tests.model_files import churn_files
from winserve.protocols import mlflow

TOLERANCE = 1e-9  # exact enumeration: the same numbers through every protocol


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Any]]:
    folder = tmp_path_factory.mktemp("explain-protocols")
    models = folder / "models"
    models.mkdir()
    case = churn_files(models)
    joblib.dump(zoo.imputer_pipeline().model, models / "bare.joblib")  # no reference beside it
    with running_server([str(models)], cwd=folder) as server:
        yield server, case


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    split: dict[str, Any] = json.loads(frame.to_json(orient="split", index=False))
    return split


def _native(url: str, rows: pd.DataFrame) -> list[dict[str, Any]]:
    answer = requests.post(
        f"{url}/models/churn/predict?explain=true", json=records(rows), timeout=60
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["explanations"]
    return found


def _same(found: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert list(got["contributions"]) == list(want["contributions"])
        assert got["baseline"] == pytest.approx(want["baseline"], abs=TOLERANCE)
        for column, value in want["contributions"].items():
            assert got["contributions"][column] == pytest.approx(value, abs=TOLERANCE)


def _no_reference_message(url: str, rows: pd.DataFrame) -> str:
    refused = requests.post(
        f"{url}/models/bare/predict?explain=true", json=records(rows), timeout=30
    )
    assert refused.status_code == 409, refused.text
    message: str = refused.json()["error"]["message"]
    assert "bare.reference.csv" in message
    return message


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(240)
def test_invocations_explains_with_params_or_the_query(
    served: tuple[ServerProcess, Any],
) -> None:
    server, case = served
    url = server.url
    rows = case.rows.head(3)
    expected = _native(url, rows)
    plain = requests.post(
        f"{url}/models/churn/invocations", json={"dataframe_split": _split(rows)}, timeout=30
    )
    assert plain.status_code == 200 and set(plain.json()) == {"predictions"}

    asked = requests.post(
        f"{url}/models/churn/invocations",
        json={"dataframe_split": _split(rows), "params": {"explain": True}},
        timeout=60,
    )
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert set(body) == {"predictions", "explanations"}
    assert body["predictions"] == plain.json()["predictions"]
    check_explanations(case.model, rows, body["explanations"])
    _same(body["explanations"], expected)

    # a CSV body has no params: the query asks (empty cells are missing values, as pd.read_csv)
    csv = requests.post(
        f"{url}/models/churn/invocations?explain=true",
        data=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert csv.status_code == 200, csv.text
    _same(csv.json()["explanations"], expected)
    off = requests.post(
        f"{url}/models/churn/invocations?explain=false",
        json={"dataframe_records": records(rows), "params": {"explain": True}},
        timeout=30,
    )
    assert off.status_code == 200 and "explanations" not in off.json()  # the query wins

    wrong = requests.post(
        f"{url}/models/churn/invocations",
        json={"dataframe_split": _split(rows), "params": {"explain": "maybe"}},
        timeout=30,
    )
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "params.explain must be true or false; got 'maybe'",
    }
    many = requests.post(
        f"{url}/models/churn/invocations",
        json={"dataframe_split": _split(case.rows), "params": {"explain": True}},
        timeout=30,
    )
    assert many.status_code == 400
    assert "24 rows asked to be explained; at most 10" in many.json()["message"]

    refused = requests.post(
        f"{url}/models/bare/invocations",
        json={"dataframe_split": _split(rows), "params": {"explain": True}},
        timeout=30,
    )
    assert refused.status_code == 409
    assert refused.json() == {
        "error_code": "INVALID_STATE",
        "message": _no_reference_message(url, rows),
    }


def _oip_inputs(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One tensor per column; a missing value is null, texts are BYTES."""
    inputs = []
    for column in rows.columns:
        numbers = pd.api.types.is_numeric_dtype(rows[column])
        data = [
            None if (isinstance(v, float) and math.isnan(v)) or v is None else v
            for v in rows[column].tolist()
        ]
        inputs.append(
            {
                "name": column,
                "shape": [len(rows)],
                "datatype": "FP64" if numbers else "BYTES",
                "data": data,
            }
        )
    return inputs


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(240)
def test_oip_infer_adds_an_explanations_output(served: tuple[ServerProcess, Any]) -> None:
    server, case = served
    url = server.url
    rows = case.rows.head(3)
    expected = _native(url, rows)
    columns = list(rows.columns)

    metadata = requests.get(f"{url}/v2/models/churn", timeout=30).json()
    assert {"name": "explanations", "datatype": "FP64", "shape": [-1, 5]} in metadata["outputs"]
    bare = requests.get(f"{url}/v2/models/bare", timeout=30).json()
    assert "explanations" not in [o["name"] for o in bare["outputs"]]

    plain = requests.post(
        f"{url}/v2/models/churn/infer", json={"inputs": _oip_inputs(rows)}, timeout=30
    )
    assert plain.status_code == 200, plain.text
    assert [o["name"] for o in plain.json()["outputs"]] == ["predict"]

    asked = requests.post(
        f"{url}/v2/models/churn/infer",
        json={"id": "r1", "parameters": {"explain": True}, "inputs": _oip_inputs(rows)},
        timeout=60,
    )
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert body["id"] == "r1"
    predict, explained = body["outputs"]
    assert predict == plain.json()["outputs"][0]
    assert explained["name"] == "explanations" and explained["datatype"] == "FP64"
    assert explained["shape"] == [3, len(columns) + 1]
    assert json.loads(explained["parameters"]["columns"]) == [*columns, "baseline"]
    assert explained["parameters"]["explained"] == "probability"
    probabilities = case.model.predict_proba(rows)
    classes = list(case.model.classes_)
    for i, want in enumerate(expected):
        row = explained["data"][i * (len(columns) + 1) : (i + 1) * (len(columns) + 1)]
        assert row[:-1] == pytest.approx(list(want["contributions"].values()), abs=TOLERANCE)
        assert row[-1] == pytest.approx(want["baseline"], abs=TOLERANCE)
        # a row adds up to the probability of the class predicted for it
        predicted = predict["data"][i]
        assert sum(row) == pytest.approx(probabilities[i, classes.index(predicted)], abs=1e-9)

    # asking for the output by name asks for the explanations too
    by_name = requests.post(
        f"{url}/v2/models/churn/infer",
        json={"inputs": _oip_inputs(rows), "outputs": [{"name": "explanations"}]},
        timeout=60,
    )
    assert by_name.status_code == 200, by_name.text
    assert [o["name"] for o in by_name.json()["outputs"]] == ["predict", "explanations"]
    assert by_name.json()["outputs"][1]["data"] == pytest.approx(explained["data"], abs=1e-12)

    wrong = requests.post(
        f"{url}/v2/models/churn/infer",
        json={"parameters": {"explain": 2}, "inputs": _oip_inputs(rows)},
        timeout=30,
    )
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "parameters.explain must be true or false; got 2"}
    refused = requests.post(
        f"{url}/v2/models/bare/infer",
        json={"parameters": {"explain": True}, "inputs": _oip_inputs(rows)},
        timeout=30,
    )
    assert refused.status_code == 409
    assert refused.json() == {"error": _no_reference_message(url, rows)}


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(120)
def test_openapi_documents_both_extensions(served: tuple[ServerProcess, Any]) -> None:
    server, _ = served
    paths = requests.get(f"{server.url}/openapi.json", timeout=30).json()["paths"]
    invocations = paths["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    params = invocations["schema"]["oneOf"][0]["properties"]["params"]["properties"]
    assert params["explain"]["type"] == "boolean"
    assert "Never passed to the model" in params["explain"]["description"]
    infer = paths["/v2/models/{model_name}/infer"]["post"]["requestBody"]["content"]
    body = infer["application/json"]["schema"]["properties"]
    assert "[rows, inputs + 1]" in body["parameters"]["properties"]["explain"]["description"]
    assert "explanations" in body["outputs"]["items"]["properties"]["name"]["enum"]


@pytest.mark.timeout(30)
def test_explain_is_taken_out_of_the_params_the_model_sees() -> None:
    """``params.explain`` is winserve's: an MLflow folder whose signature declares params
    still reads ``predict_method`` from what is left, and never sees ``explain``."""
    split = {"columns": ["a"], "data": [[1.0]]}
    both = mlflow.decode_json(
        {"dataframe_split": split, "params": {"explain": True, "predict_method": "predict_proba"}}
    )
    assert both.explain and both.params == {"predict_method": "predict_proba"}
    alone = mlflow.decode_json({"dataframe_split": split, "params": {"explain": "false"}})
    assert not alone.explain and alone.params is None
    untouched = mlflow.decode_json({"dataframe_split": split, "params": {"other": 1}})
    assert not untouched.explain and untouched.params == {"other": 1}

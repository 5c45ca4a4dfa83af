"""MLflow's scoring protocol: every input format gives the model's own predictions; errors come
in MLflow's shape with MLflow's statuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient

from tests.conftest import diabetes_with_text, iris_frame
from tests.helpers import local_client
from winserve.model_info import ModelSpec


def _client(path: Path) -> FlaskClient:
    return local_client(ModelSpec(str(path)), max_rows=1000)


@pytest.fixture(scope="module")
def forest(iris_forest: Path) -> Iterator[FlaskClient]:
    yield _client(iris_forest)


@pytest.fixture(scope="module")
def pipeline(text_pipeline: Path) -> Iterator[FlaskClient]:
    yield _client(text_pipeline)


def _bodies(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    records = json.loads(frame.to_json(orient="records"))
    return {
        "dataframe_split": {"dataframe_split": json.loads(frame.to_json(orient="split"))},
        "dataframe_records": {"dataframe_records": records},
        "instances (rows)": {"instances": frame.to_numpy().tolist()},
        "instances (records)": {"instances": records},
        "inputs (rows)": {"inputs": frame.to_numpy().tolist(), "params": {"ignored": 1}},
        "inputs (columns)": {"inputs": {c: frame[c].tolist() for c in frame.columns}},
    }


def _check_all_formats(client: FlaskClient, frame: pd.DataFrame, expected: list[Any]) -> None:
    for name, body in _bodies(frame).items():
        response = client.post("/invocations", json=body)
        assert response.status_code == 200, (name, response.json)
        got = response.json["predictions"]
        if isinstance(expected[0], float):
            assert np.allclose(got, expected), name
        else:
            assert got == expected, name
    csv_response = client.post(
        "/invocations", data=frame.to_csv(index=False), content_type="text/csv; charset=utf-8"
    )
    assert csv_response.status_code == 200, csv_response.json
    got = csv_response.json["predictions"]
    assert np.allclose(got, expected) if isinstance(expected[0], float) else got == expected


def test_classifier_in_every_format(forest: FlaskClient, iris_forest: Path) -> None:
    x, _ = iris_frame()
    rows = x.iloc[::7]
    _check_all_formats(forest, rows, joblib.load(iris_forest).predict(rows).tolist())


def test_pipeline_with_string_columns_in_every_format(
    pipeline: FlaskClient, text_pipeline: Path
) -> None:
    x, _ = diabetes_with_text()
    rows = x.iloc[:25]
    _check_all_formats(pipeline, rows, joblib.load(text_pipeline).predict(rows).tolist())


def test_ping_and_version(forest: FlaskClient) -> None:
    ping = forest.get("/ping")
    assert ping.status_code == 200 and ping.get_data(as_text=True) == "\n"
    assert forest.get("/version").get_data(as_text=True).startswith("winserve ")
    assert forest.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"json": {"columns": ["a"], "data": [[1]], "index": [0]}},
            400,
            "exactly one of the input fields",
        ),
        (
            {"json": {"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}},
            400,
            "Received dictionary with input fields: ['inputs', 'instances']",
        ),
        ({"json": [[1, 2, 3, 4]]}, 400, "Received a list"),
        ({"json": {"dataframe_split": [[1, 2]]}}, 400, '"dataframe_split" must be an object'),
        ({"json": {"dataframe_records": [[1, 2]]}}, 400, "non-empty list of objects"),
        ({"json": {"inputs": {"a": [1, 2], "b": [1]}}}, 400, "all of the same length"),
        ({"json": {"instances": [[1, 2]]}}, 400, "the model expects 4"),
        (
            {"data": "[[1]]", "content_type": "application/json; format=pandas-split"},
            415,
            "MLflow 2.0",
        ),
        (
            {"data": "a,b\n1,2", "content_type": "text/csv; charset=latin-1"},
            415,
            "only supports UTF-8",
        ),
        ({"data": "a,b", "content_type": "application/csv"}, 415, "application/json or text/csv"),
        ({"data": "a,b\n1,2,3", "content_type": "text/csv"}, 400, "CSV line 2 has 3 values"),
        ({"data": "", "content_type": "text/csv"}, 400, "CSV body is empty"),
        ({"data": "{", "content_type": "application/json"}, 400, "not valid JSON"),
    ],
)
def test_errors_in_mlflow_shape(
    forest: FlaskClient, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = forest.post("/invocations", **kwargs)
    assert response.status_code == status
    assert set(response.json) == {"error_code", "message"}
    assert response.json["error_code"] == "BAD_REQUEST"
    assert message in response.json["message"]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataframe_records": [{"sepal length (cm)": "x"}]}, "missing columns"),
        ({"dataframe_split": {"columns": ["x"], "data": [[1]]}}, "unknown column 'x'"),
    ],
)
def test_schema_and_parameter_problems_are_mlflows_invalid_parameter_value(
    forest: FlaskClient, body: dict[str, Any], message: str
) -> None:
    response = forest.post("/invocations", json=body)
    assert response.status_code == 400
    assert response.json["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in response.json["message"]


@pytest.mark.parametrize(
    "params", [{"predict_method": "predict_proba"}, {"predict_method": "fit"}, [1], "x"]
)
def test_params_are_ignored_as_mlflow_ignores_them_without_a_params_schema(
    forest: FlaskClient, params: Any
) -> None:
    """``mlflow models serve`` applies params only for a signature with a params schema, and
    a model file has none: whatever they hold, the answer is predict's (issue 22; an MLflow
    folder whose schema declares predict_method: tests/test_mlflow_params.py)."""
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    plain = forest.post("/invocations", json={"instances": rows})
    given = forest.post("/invocations", json={"instances": rows, "params": params})
    assert given.status_code == 200, given.json
    assert (
        given.json
        == plain.json
        == {"predictions": forest.post("/predict", json=rows).json["predictions"]}
    )


def test_model_unavailable_in_mlflow_shape(tmp_path: Path) -> None:
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"junk")
    client = _client(broken)
    response = client.post("/invocations", json={"instances": [[1]]})
    assert response.status_code == 503
    assert response.json["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert client.get("/ping").status_code == 503


@pytest.mark.server
def test_plain_requests_against_a_real_server_classifier_and_regressor(
    iris_forest: Path, text_pipeline: Path, tmp_path: Path
) -> None:
    """Every MLflow format, CSV and the OIP over HTTP, as a client program sends them."""
    import requests

    from tests.helpers import running_server

    x_iris, _ = iris_frame()
    x_text, _ = diabetes_with_text()
    for path, frame in ((iris_forest, x_iris.iloc[::11]), (text_pipeline, x_text.iloc[:20])):
        expected = joblib.load(path).predict(frame).tolist()

        def same(got: list[Any], want: list[Any] = expected) -> bool:
            if isinstance(want[0], float):
                return bool(np.allclose(got, want))
            return got == want

        with running_server([str(path)], cwd=tmp_path) as server:
            for name, body in _bodies(frame).items():
                answer = requests.post(f"{server.url}/invocations", json=body, timeout=30)
                assert answer.status_code == 200 and same(answer.json()["predictions"]), name
            answer = requests.post(
                f"{server.url}/invocations",
                data=frame.to_csv(index=False).encode(),
                headers={"Content-Type": "text/csv"},
                timeout=30,
            )
            assert same(answer.json()["predictions"]), "csv"
            inputs = [
                {
                    "name": c,
                    "shape": [len(frame)],
                    "datatype": "FP64" if frame[c].dtype.kind == "f" else "BYTES",
                    "data": frame[c].tolist(),
                }
                for c in frame.columns
            ]
            name = requests.utils.quote(path.stem)
            answer = requests.post(
                f"{server.url}/v2/models/{name}/infer", json={"inputs": inputs}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            assert same(answer.json()["outputs"][0]["data"]), "oip"

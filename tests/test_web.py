"""The Flask app on the in-process backend: every native endpoint and error path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.conftest import iris_frame
from tests.helpers import csrf_token, local_client
from winserve.model_info import ModelSpec


@pytest.fixture(scope="module")
def forest(iris_forest: Path) -> Iterator[FlaskClient]:
    yield local_client(ModelSpec(str(iris_forest)), max_rows=50, max_body_mb=0.01)


@pytest.fixture(scope="module")
def chaos() -> Iterator[FlaskClient]:
    yield local_client(ModelSpec(factory="tests.models:chaos"))


def test_predictions_match_the_model_in_process(forest: FlaskClient, iris_forest: Path) -> None:
    x, _ = iris_frame()
    rows = x.iloc[::5]
    response = forest.post("/predict?proba=true", json=rows.to_dict(orient="records"))
    assert response.status_code == 200, response.json
    model = joblib.load(iris_forest)
    assert response.json["predictions"] == model.predict(rows).tolist()
    assert response.json["classes"] == model.classes_.tolist()
    assert np.allclose(response.json["probabilities"], model.predict_proba(rows))
    assert response.headers["X-Request-Id"]


def test_model_and_health(forest: FlaskClient) -> None:
    model = forest.get("/model").json
    assert model["file"] == "iris forest.joblib" and "source" not in model
    assert model["outputs"] == ["predict", "predict_proba"] and len(model["sha256"]) == 64
    assert next(f["name"] for f in model["features"]) == "sepal length (cm)"
    health = forest.get("/health")
    assert health.status_code == 200 and health.json["status"] == "ready"


def test_model_page_shows_the_card(forest: FlaskClient) -> None:
    page = forest.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert (
        "iris forest" in text and "sepal length (cm)" in text and "RandomForestClassifier" in text
    )


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "message"),
    [
        ({"data": "[[1,2,3,4]]"}, 415, "unsupported_media_type", "Content-Type: application/json"),
        (
            {"data": "[[1,2", "content_type": "application/json"},
            400,
            "bad_request",
            "not valid JSON",
        ),
        ({"data": "", "content_type": "application/json"}, 400, "bad_request", "body is empty"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "bad_request", "UTF-8"),
        (
            {"data": "[" * 100000 + "]" * 100000, "content_type": "application/json"},
            413,
            "payload_too_large",
            "max_body_mb",
        ),
        (
            {"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"},
            400,
            "bad_request",
            "",
        ),
        ({"json": [[1, 2, 3, 4]] * 51}, 413, "payload_too_large", "setting: max_rows"),
        ({"json": [{"sepal length (cm)": 1}]}, 400, "bad_request", "missing columns"),
        (
            {"json": [[1, 2, 3, "x"]]},
            400,
            "bad_request",
            "row 1, column 'petal width (cm)': expected a number, got 'x'",
        ),
        ({"json": []}, 400, "bad_request", "no rows to predict"),
    ],
)
def test_bad_requests_get_4xx_in_the_native_shape(
    forest: FlaskClient, kwargs: dict[str, Any], status: int, code: str, message: str
) -> None:
    response = forest.post("/predict", **kwargs)
    assert response.status_code == status
    assert set(response.json) == {"error"}
    assert response.json["error"]["code"] == code
    assert message in response.json["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert forest.post("/predict", json=[[5, 3, 1, 0]]).status_code == 200


def test_unknown_route_and_method(forest: FlaskClient) -> None:
    missing = forest.get("/nowhere")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    wrong = forest.get("/predict")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert wrong.json["error"]["code"] == "method_not_allowed"


def test_proba_switch_is_checked(forest: FlaskClient) -> None:
    response = forest.post("/predict?proba=maybe", json=[[5, 3, 1, 0]])
    assert response.status_code == 400
    # the message names the parameter (a new user's trial: it did not say which)
    said = "the query parameter 'proba' takes true or false, got 'maybe'"
    assert response.json["error"]["message"] == said
    for name in ("scores", "explain"):
        response = forest.post(f"/predict?proba=1&{name}=2", json=[[5, 3, 1, 0]])
        assert response.status_code == 400
        assert (
            f"the query parameter {name!r} takes true or false, got '2'"
            in response.json["error"]["message"]
        )
    mlflow = forest.post("/invocations?explain=maybe", json={"inputs": [[5, 3, 1, 0]]})
    assert mlflow.status_code == 400 and mlflow.json["error_code"] == "BAD_REQUEST"
    assert mlflow.json["message"] == (
        "the query parameter 'explain' takes true or false, got 'maybe'"
    )


def test_model_errors_are_sorted_into_input_and_model_faults(chaos: FlaskClient) -> None:
    assert chaos.post("/predict", json={"a": 1, "b": 2}).json == {"predictions": [3.0]}
    rejected = chaos.post("/predict", json={"a": -1, "b": 2})
    assert rejected.status_code == 400
    assert rejected.json["error"] == {
        "code": "model_rejected_input",
        "message": "the model rejected the input: ValueError: a must not be -1",
    }
    failed = chaos.post("/predict", json={"a": 13, "b": 2})
    assert failed.status_code == 500 and failed.json["error"]["code"] == "model_error"
    assert "Traceback" not in failed.get_data(as_text=True)
    assert chaos.post("/predict?proba=1", json={"a": 1, "b": 2}).json["probabilities_unavailable"]


def test_a_model_that_failed_to_load_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"garbage")
    client = local_client(ModelSpec(str(broken)))
    health = client.get("/health")
    assert health.status_code == 503 and health.json["status"] == "failed"
    assert "cannot load broken.joblib" in health.json["reason"]
    response = client.post("/predict", json=[[1]])
    # no Retry-After: the model stays failed until its file is replaced (issue 23; it said 2 s)
    assert response.status_code == 503 and "Retry-After" not in response.headers
    page = client.get("/").get_data(as_text=True)
    assert "the model failed" in page and "could not be loaded" in page


@pytest.mark.parametrize(
    ("typed", "status", "shown"),
    [
        ("1,5", 200, '<strong id="prediction">3.5</strong>'),  # as typed on a German PC
        (" 1.5 ", 200, '<strong id="prediction">3.5</strong>'),
        ("1,234", 400, "expected a number, got &#39;1,234&#39;"),  # a thousands group? not guessed
    ],
)
def test_the_form_reads_a_decimal_comma(
    chaos: FlaskClient, typed: str, status: int, shown: str
) -> None:
    token = csrf_token(chaos.get("/").get_data(as_text=True))
    response = chaos.post("/", data={"f0": typed, "f1": "2", "csrf_token": token})
    assert response.status_code == status
    assert shown in response.get_data(as_text=True)
    assert f'value="{typed}"' in response.get_data(as_text=True)  # shown as typed

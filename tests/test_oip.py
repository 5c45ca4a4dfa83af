"""The Open Inference Protocol v2: every input layout gives the model's own predictions, outputs
are shaped and typed as OIP clients expect, errors are ``{"error": ...}``; and Triton's own
client library works against a real server."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import requests
from flask.testing import FlaskClient

from tests.conftest import diabetes_with_text, iris_frame
from tests.helpers import local_client, running_server
from winserve.model_info import ModelSpec

TIMEOUT = 30
NAME = "iris forest"  # the fixture file is "iris forest.joblib": a space, as users name files
Q = "iris%20forest"


@pytest.fixture(scope="module")
def forest(iris_forest: Path) -> Iterator[FlaskClient]:
    yield local_client(ModelSpec(str(iris_forest)), max_rows=1000)


@pytest.fixture(scope="module")
def pipeline(text_pipeline: Path) -> Iterator[FlaskClient]:
    yield local_client(ModelSpec(str(text_pipeline)), max_rows=1000)


@pytest.fixture(scope="module")
def regressor(array_regressor: Path) -> Iterator[FlaskClient]:
    yield local_client(ModelSpec(str(array_regressor)), max_rows=1000)


def _datatype(series: pd.Series) -> str:
    return "FP64" if pd.api.types.is_numeric_dtype(series) else "BYTES"


def _per_column(frame: pd.DataFrame, nested: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "name": c,
            "shape": [len(frame), 1] if nested else [len(frame)],
            "datatype": _datatype(frame[c]),
            "data": [[v] for v in frame[c].tolist()] if nested else frame[c].tolist(),
        }
        for c in frame.columns
    ]


def _matrix(frame: pd.DataFrame, flat: bool, datatype: str = "FP64") -> list[dict[str, Any]]:
    values = frame.to_numpy().tolist()
    return [
        {
            "name": "input-0",
            "shape": list(frame.shape),
            "datatype": datatype,
            "data": [v for row in values for v in row] if flat else values,
        }
    ]


def _infer(client: FlaskClient, name: str, body: dict[str, Any]) -> Any:
    response = client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.json
    return response.json


def test_classifier_every_layout_and_both_outputs(forest: FlaskClient, iris_forest: Path) -> None:
    model = joblib.load(iris_forest)
    x, _ = iris_frame()
    rows = x.iloc[::9]
    expected = model.predict(rows).tolist()
    proba = model.predict_proba(rows)
    name = NAME
    for inputs in (_matrix(rows, False), _matrix(rows, True), _per_column(rows)):
        body = {
            "id": "req-7",
            "inputs": inputs,
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
        answer = _infer(forest, Q, body)
        assert answer["model_name"] == name and answer["id"] == "req-7"
        predict, probabilities = answer["outputs"]
        assert predict == {
            "name": "predict",
            "shape": [len(rows), 1],
            "datatype": "BYTES",
            "parameters": {"content_type": "np"},
            "data": expected,
        }
        assert probabilities["shape"] == [len(rows), 3]
        assert probabilities["datatype"] == "FP64"
        assert np.allclose(np.reshape(probabilities["data"], (len(rows), 3)), proba)


def test_default_output_is_predict_and_id_only_when_given(forest: FlaskClient) -> None:
    x, _ = iris_frame()
    answer = _infer(forest, Q, {"inputs": _matrix(x.iloc[:2], False)})
    assert [o["name"] for o in answer["outputs"]] == ["predict"]
    assert "id" not in answer and "model_version" not in answer


def test_all_numeric_datatypes_are_read(forest: FlaskClient, iris_forest: Path) -> None:
    x, _ = iris_frame()
    rows = (x.iloc[::15] * 10).round()  # whole numbers fit every type
    expected = joblib.load(iris_forest).predict(rows).tolist()
    for datatype in ("FP16", "FP32", "FP64", "INT16", "INT32", "INT64", "UINT8", "UINT64"):
        answer = _infer(forest, Q, {"inputs": _matrix(rows.astype(int), True, datatype)})
        assert answer["outputs"][0]["data"] == expected, datatype


def test_pipeline_with_string_columns(pipeline: FlaskClient, text_pipeline: Path) -> None:
    x, _ = diabetes_with_text()
    rows = x.iloc[:12]
    expected = joblib.load(text_pipeline).predict(rows)
    for inputs in (_per_column(rows), _per_column(rows, nested=True)):
        body = {"parameters": {"content_type": "pd"}, "inputs": inputs}
        predict = _infer(pipeline, text_pipeline.stem, body)["outputs"][0]
        assert predict["datatype"] == "FP64" and predict["shape"] == [12, 1]
        assert np.allclose(predict["data"], expected)
    # the same rows as one 2-D BYTES tensor (positional, mixed types as text)
    mixed = [
        {
            "name": "input-0",
            "shape": list(rows.shape),
            "datatype": "BYTES",
            "data": [[str(v) for v in r] for r in rows.to_numpy().tolist()],
        }
    ]
    predict = _infer(pipeline, text_pipeline.stem, {"inputs": mixed})["outputs"][0]
    assert np.allclose(predict["data"], expected)


def test_regressor_without_column_names(regressor: FlaskClient, array_regressor: Path) -> None:
    model = joblib.load(array_regressor)
    data = np.random.default_rng(3).normal(size=(5, model.n_features_in_))
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [5, 10],
                "datatype": "FP32",
                "data": data.astype(np.float32).ravel().tolist(),
            }
        ]
    }
    predict = _infer(regressor, array_regressor.stem, body)["outputs"][0]
    assert np.allclose(predict["data"], model.predict(data.astype(np.float32)), rtol=1e-5)
    meta = regressor.get(f"/v2/models/{array_regressor.stem}").json
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 10]}]
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1, 1]}]


def test_metadata_health_and_versions(forest: FlaskClient) -> None:
    assert forest.get("/v2").json["name"] == "winserve"
    # the model repository extension is served (/v2/repository/...): the metadata says so
    assert forest.get("/v2").json["extensions"] == ["model_repository"]
    index = forest.post("/v2/repository/index", headers={"X-Winserve-Client": "1"})
    assert index.status_code == 200 and index.json[0]["state"] == "READY"
    assert forest.get("/v2/health/live").json == {"live": True}
    assert forest.get("/v2/health/ready").json == {"ready": True}
    assert forest.get(f"/v2/models/{Q}/ready").json == {"name": NAME, "ready": True}
    assert forest.get(f"/v2/models/{Q}/versions/1/ready").status_code == 200
    meta = forest.get(f"/v2/models/{Q}/versions/1").json
    assert meta["name"] == NAME and meta["versions"] == ["1"]
    assert meta["platform"] == "sklearn"
    x, _ = iris_frame()
    assert [i["name"] for i in meta["inputs"]] == list(x.columns)
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    answer = forest.post(
        f"/v2/models/{Q}/versions/1/infer", json={"inputs": _matrix(x.iloc[:1], False)}
    ).json
    assert answer["model_version"] == "1"


GOOD = [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v2/models/nope/infer", {"inputs": GOOD}, 404, "model 'nope' is not served"),
        (f"/v2/models/{Q}/versions/7/infer", {"inputs": GOOD}, 404, "no version '7'"),
        (f"/v2/models/{Q}/infer", [1, 2], 400, '"inputs"'),
        (f"/v2/models/{Q}/infer", {"inputs": []}, 400, "non-empty list"),
        (f"/v2/models/{Q}/infer", {"inputs": GOOD, "id": 5}, 400, '"id" must be a string'),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "datatype": "FP128"}]},
            400,
            '"datatype" must be one of',
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "shape": [2, 4]}]},
            400,
            "shape [2, 4] needs 8 values; data has 4",
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "shape": [1, 3], "data": [1, 2, 3]}]},
            400,
            "the model expects [rows, 4]",
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "data": [1, 2, "x", 4]}]},
            400,
            "element 2 is 'x'; FP64 elements must be numbers",
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "datatype": "UINT8", "data": [1, 2, 300, 4]}]},
            400,
            "UINT8 elements must lie between 0 and 255",
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "datatype": "INT32", "data": [1, 2, 3.5, 4]}]},
            400,
            "whole numbers",
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": GOOD, "outputs": [{"name": "transform"}]},
            400,
            "unknown output 'transform'; this model has outputs 'predict', 'predict_proba'",
        ),
        (
            f"/v2/models/{Q}/infer",
            {
                "inputs": [
                    {"name": "petal width (cm)", "shape": [1], "datatype": "FP64", "data": [1.0]}
                ]
            },
            400,
            "missing columns 'sepal length (cm)'",
        ),
        (
            f"/v2/models/{Q}/infer",
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                    {"name": "b", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
                ]
            },
            400,
            "different numbers of rows",
        ),
        (
            f"/v2/models/{Q}/infer",
            {"inputs": [{**GOOD[0], "shape": [1, 2, 2]}]},
            400,
            "3 dimensions",
        ),
        (f"/v2/models/{Q}/nothing", None, 404, "no such page"),
    ],
)
def test_errors_are_oip_shaped(
    forest: FlaskClient, path: str, body: Any, status: int, needle: str
) -> None:
    response = forest.post(path, json=body) if body is not None else forest.get(path)
    assert response.status_code == status, response.json
    assert set(response.json) == {"error"}, response.json
    assert needle in response.json["error"]


def test_binary_tensor_extension(forest: FlaskClient, iris_forest: Path) -> None:
    """Triton's binary data: JSON header, then raw little-endian tensors (BYTES length-prefixed)."""
    x, _ = iris_frame()
    rows = x.iloc[:3].to_numpy(dtype="<f4")
    header = (
        b'{"inputs":[{"name":"input-0","shape":[3,4],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":48}}]}'
    )
    response = forest.post(
        f"/v2/models/{Q}/infer",
        data=header + rows.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.json
    frame = pd.DataFrame(rows, columns=x.columns)
    assert response.json["outputs"][0]["data"] == joblib.load(iris_forest).predict(frame).tolist()
    short = forest.post(
        f"/v2/models/{Q}/infer",
        data=header + rows.tobytes()[:20],
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert short.status_code == 400 and "less binary data" in short.json["error"]


def test_bytes_binary_decoding(pipeline: FlaskClient, text_pipeline: Path) -> None:
    x, _ = diabetes_with_text()
    rows = x.iloc[:2]
    parts, inputs = [], []
    for column in rows.columns:
        if _datatype(rows[column]) == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in rows[column])
            datatype = "BYTES"
        else:
            raw = rows[column].to_numpy(dtype="<f8").tobytes()
            datatype = "FP64"
        parts.append(raw)
        inputs.append(
            {
                "name": column,
                "shape": [2],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
    import json

    header = json.dumps({"inputs": inputs}).encode()
    response = pipeline.post(
        f"/v2/models/{text_pipeline.stem}/infer",
        data=header + b"".join(parts),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.json
    assert np.allclose(
        response.json["outputs"][0]["data"], joblib.load(text_pipeline).predict(rows)
    )


@pytest.mark.server
def test_triton_client_against_a_real_server(iris_forest: Path, tmp_path: Path) -> None:
    """Triton's published HTTP client, with its defaults (binary tensors) and with JSON."""
    import tritonclient.http as httpclient

    model = joblib.load(iris_forest)
    x, _ = iris_frame()
    rows = x.iloc[::11].to_numpy(dtype=np.float32)
    frame = pd.DataFrame(rows, columns=x.columns)
    with running_server([str(iris_forest)], cwd=tmp_path) as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready(NAME)
            assert client.get_model_metadata(NAME)["outputs"][0]["name"] == "predict"
            for binary in (True, False):
                tensor = httpclient.InferInput("input-0", list(rows.shape), "FP32")
                tensor.set_data_from_numpy(rows, binary_data=binary)
                outputs = [
                    httpclient.InferRequestedOutput("predict", binary_data=binary),
                    httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
                ]
                result = client.infer(NAME, [tensor], outputs=outputs, request_id="r1")
                got = result.as_numpy("predict")
                assert got.shape == (len(rows), 1)
                assert [v.decode() if isinstance(v, bytes) else v for v in got[:, 0]] == (
                    model.predict(frame).tolist()
                )
                assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(frame))
                assert result.get_response()["id"] == "r1"
            from tritonclient.utils import InferenceServerException

            bad = httpclient.InferInput("input-0", [1, 3], "FP32")
            bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
            with pytest.raises(InferenceServerException, match=r"expects \[rows, 4\]"):
                client.infer(NAME, [bad])
        finally:
            client.close()
        # plain requests against the same server, for the regressor's sake see test_mlflow
        meta = requests.get(f"{server.url}/v2/models/{Q}", timeout=TIMEOUT).json()
        assert meta["name"] == NAME


@pytest.mark.parametrize("n_classes", [2, 3])
def test_metadata_gives_the_scores_the_rank_infer_answers(n_classes: int, tmp_path: Path) -> None:
    """A new user's finding (issue 23): the metadata said decision_function is [-1] while infer
    answered [n, 3]. Each dimension the metadata gives is -1 (any) or the one infer answers."""
    from sklearn.linear_model import LogisticRegression

    x, y = iris_frame()
    keep = y.isin(sorted(set(y))[:n_classes]).to_numpy()
    path = tmp_path / "scored.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(x[keep], y[keep]), path)
    client = local_client(ModelSpec(str(path)))
    meta = client.get("/v2/models/scored").json
    (declared,) = [o["shape"] for o in meta["outputs"] if o["name"] == "decision_function"]
    body = {"inputs": _matrix(x.iloc[:4], False), "outputs": [{"name": "decision_function"}]}
    (answered,) = [o["shape"] for o in _infer(client, "scored", body)["outputs"]]
    assert answered == [4, 1 if n_classes == 2 else 3]
    assert len(declared) == len(answered)
    assert all(d in (-1, a) for d, a in zip(declared, answered, strict=True)), (declared, answered)
    assert declared[-1] == (1 if n_classes == 2 else -1)

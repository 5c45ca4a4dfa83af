"""A model that failed says so everywhere (issue 22): ``/predict``, ``/model``, the MLflow and
OIP routes, ``/health`` and the page say it failed and why, in one line without a library's
internals (the console keeps the full text); nothing says "still loading" or promises that the
page updates by itself. Ctrl+C while the model loads is a stop: exit code 0, no failure."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, local_client, running_server
from winserve.failures import public_reason
from winserve.model_info import ModelSpec

XGBOOST = (
    "[14:02:11] /workspace/src/data/data.cc:1104: Check failed: valid: Input data contains "
    "`inf`\nStack trace:\n  [bt] (0) /opt/lib/libxgboost.so(+0x2a3f1) [0x7f00]"
)
ONNXRUNTIME = (
    "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while running "
    "Gemm node. Name:'gemm' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/"
    "math/gemm_helper.h:14 onnxruntime::GemmHelper::GemmHelper(const onnxruntime::TensorShape&"
    ", bool, const onnxruntime::TensorShape&, bool) left operand cannot broadcast on dim 0"
)
INTERNALS = ("/workspace", "data.cc", "Stack trace", "libxgboost", "gemm_helper", "::")


@pytest.mark.parametrize(
    ("reason", "kept"),
    [
        (XGBOOST, "Check failed: valid: Input data contains `inf`"),
        (ONNXRUNTIME, "Status Message: left operand cannot broadcast on dim 0"),
        ("a and b must be positive\nmore", "a and b must be positive"),
    ],
)
def test_a_public_reason_is_one_line_without_a_librarys_internals(reason: str, kept: str) -> None:
    public = public_reason(reason)
    assert kept in public and "\n" not in public
    assert not any(internal in public for internal in INTERNALS), public


def _message(body: Any) -> str:
    error = body.get("error", body)
    return str(error["message"] if isinstance(error, dict) else body.get("message") or error)


def test_every_route_and_the_page_say_the_model_failed_and_why() -> None:
    client = local_client(ModelSpec(factory="tests.models:compiled_error"))
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "failed"
    assert "Check failed" in health.get_json()["reason"]
    answers = {
        "model": client.get("/model"),
        "predict": client.post("/predict", json=[{"a": 1, "b": 2}]),
        "invocations": client.post("/invocations", json={"dataframe_records": [{"a": 1, "b": 2}]}),
        "oip": client.get("/v2/models/compiled_error"),
    }
    for route, answer in answers.items():
        assert answer.status_code == 503, route
        message = _message(answer.get_json())
        assert "failed" in message and "Check failed" in message, (route, message)
        assert "loading" not in message, (route, message)
        assert not any(internal in message for internal in INTERNALS), (route, message)
    assert answers["model"].get_json()["error"]["code"] == "model_failed"
    page = client.get("/").get_data(as_text=True)
    assert "The model failed and is not served" in page and "Check failed" in page
    assert not any(internal in page for internal in INTERNALS)
    assert "updates by itself" not in page and 'http-equiv="refresh"' not in page
    status = client.get("/page-status").get_json()
    assert status["key"] == "failed" and "updates by itself" not in status["text"]


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(90)
def test_ctrl_c_while_the_model_loads_is_a_stop_with_exit_code_0() -> None:
    args = ["--factory", "tests.models:slow_reloading_chaos"]  # 8 s to load
    with running_server(args, cwd=ROOT, ready=False) as server:
        server.wait_for_line(lambda line: "loading" in line, 30)
        time.sleep(1.0)  # the host is loading (the signal handlers go in right after the line)
        assert server.stop(signal.SIGINT, 30) == 0
        console = server.drain()
    assert "stopped." in console
    assert "could not be loaded" not in console, console


def test_a_model_that_never_loaded_does_not_promise_a_retry(tmp_path: Path) -> None:
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"not a model")
    client = local_client(ModelSpec(str(broken)))
    status = client.get("/page-status").get_json()
    assert status["key"] == "failed" and "could not be loaded" in status["text"]
    assert "keeps trying" not in status["text"] and "broken.joblib" in status["text"]
    assert str(tmp_path) not in status["text"]  # the file's name only
    answer = client.post("/predict", json=[[1]])
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "model_failed"


@pytest.mark.parametrize("spec", ["broken file", "tests.models:compiled_error"])
def test_a_failed_model_answers_503_without_retry_after(spec: str, tmp_path: Path) -> None:
    """A new user's finding (issue 23): a model that failed answered ``Retry-After: 2``, which
    tells a client's retry loop to come back in 2 s for ever. It stays failed until its file is
    replaced, so no route says when to retry (a 503 MAY carry one: RFC 9110 §15.6.4)."""
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"not a model")
    model = ModelSpec(str(broken)) if spec == "broken file" else ModelSpec(factory=spec)
    client = local_client(model)
    name = "broken" if spec == "broken file" else "compiled_error"
    answers = {
        "health": client.get("/health"),
        "model": client.get("/model"),
        "predict": client.post("/predict", json=[{"a": 1, "b": 2}]),
        "invocations": client.post("/invocations", json={"dataframe_records": [{"a": 1}]}),
        "oip": client.get(f"/v2/models/{name}"),
        "infer": client.post(
            f"/v2/models/{name}/infer",
            json={"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}]},
        ),
    }
    for route, answer in answers.items():
        assert answer.status_code == 503, (route, answer.get_json())
        assert "Retry-After" not in answer.headers, route
    assert answers["predict"].get_json()["error"]["code"] == "model_failed"

"""A model of images or tensors is not told to add a reference sample (issue 24): explanations
and what-if curves cover table models, and every place that would have said "put a sample of
the training rows beside the model" says that instead: the page's hint, ``/predict?explain=true``,
``/whatif``, MLflow's ``/invocations``, ``winserve check``'s line, and the monitor's drift
section. A model of columns without a sample is still told how to make one.

The graphs are ``tests/tensor_graphs.py``'s, served in this process (``local_client``).
"""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests import tensor_graphs as tg
from tests.helpers import local_client
from winserve import explaining
from winserve.model_info import ModelSpec
from winserve.web import why_page

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

TABLES = "explanations and what-if curves cover table models"


def _client(folder: Path, name: str, graph: bytes, card: str = "") -> Any:
    path = tg.write(folder, name, graph, card)
    inputs = tomllib.loads(card).get("inputs", {}) if card else {}
    return local_client(ModelSpec(path=str(path), inputs=inputs))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explain-tensors")


@pytest.fixture(scope="module")
def images(folder: Path) -> Any:
    return _client(folder, "digits", tg.digits_graph(), tg.DIGITS_CARD)


@pytest.fixture(scope="module")
def sequences(folder: Path) -> Any:
    return _client(folder, "sequences", tg.sequence_graph())


def _info(client: Any) -> Any:
    from winserve.web import held

    app = client.application
    with app.test_request_context("/"):
        return held.plane().describe(None).info


def test_an_image_model_is_told_explanations_cover_table_models(images: Any) -> None:
    png = {"b64": base64.b64encode(tg.digit_png(3)).decode("ascii")}
    for url, body in [
        ("/predict?explain=true", {"image": png}),
        ("/whatif", {"image": png}),
        ("/invocations?explain=true", {"inputs": {"image": [png]}}),
    ]:
        answer = images.post(url, json=body)
        assert answer.status_code == 409, (url, answer.text)
        assert TABLES in answer.text and "this model takes images" in answer.text, answer.text
        assert "reference.csv" not in answer.text and "df.sample" not in answer.text
    assert images.post("/predict", json={"image": png}).status_code == 200  # it serves
    info = _info(images)
    assert not why_page.available(info)
    assert why_page.hint(info) == (
        "Why this answer: not shown; explanations and what-if curves cover table models "
        "(inputs that are columns of numbers, categories or text); this model takes images."
    )
    assert explaining.reference_line(info).startswith(f"not used: {TABLES}")
    assert "reference" not in images.get("/").text
    monitor = images.get("/monitor.json").json  # drift compares columns too
    assert monitor["hint"].startswith("Drift against a reference sample covers table models")
    assert "df.sample" not in images.get("/monitor").text


def test_a_tensor_model_is_told_so_too(sequences: Any) -> None:
    info = _info(sequences)
    hint = why_page.hint(info)
    assert TABLES in hint and "this model takes tensors" in hint and "df.sample" not in hint
    answer = sequences.post("/predict?explain=true", json={"seq": [[[1, 2, 3, 4], [2, 3, 4, 5]]]})
    assert answer.status_code == 409 and "this model takes tensors" in answer.text, answer.text
    page = sequences.get("/").text
    assert "reference" not in page and "three main reasons" not in page


def test_a_model_of_columns_without_a_sample_is_still_told_how_to_make_one() -> None:
    client = local_client(ModelSpec(factory="tests.models:chaos"))
    answer = client.post("/predict?explain=true", json=[{"a": 1, "b": 2}])
    assert answer.status_code == 409 and "df.sample(1000)" in answer.text, answer.text
    assert TABLES not in answer.text

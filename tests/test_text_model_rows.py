"""A model fitted on a list of documents takes text under its one input's name, as the model
itself would (issue 22): a wrong key (``{"txt": …}``) is refused naming the key and the one
expected, and a number or true/false is refused naming the row, where it used to be turned
into text for a model that raises on it (a vectorizer calls ``.lower()``)."""

from __future__ import annotations

from typing import Any

import joblib
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from tests.helpers import local_client
from tests.zoo import TEXTS
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    labels = ["good", "bad"] * (len(TEXTS) // 2)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS * 5, labels * 5)
    path = tmp_path_factory.mktemp("text") / "text.joblib"
    joblib.dump(model, path)
    return model, local_client(ModelSpec(str(path)))


def _message(body: dict[str, Any]) -> str:
    error = body.get("error", body)
    return str(error["message"] if isinstance(error, dict) else body["message"])


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/predict", [{"txt": "a fine day"}]),
        ("/predict", {"txt": "a fine day"}),
        ("/predict", {"columns": ["txt"], "data": [["a fine day"]]}),
        ("/invocations", {"dataframe_records": [{"txt": "a fine day"}]}),
    ],
)
def test_a_wrong_key_is_refused_naming_it_and_the_models_input(
    text_model: tuple[Any, Any], url: str, body: Any
) -> None:
    _, client = text_model
    answer = client.post(url, json=body)
    assert answer.status_code == 400, answer.get_json()
    message = _message(answer.get_json())
    assert "'txt'" in message and "'text'" in message


@pytest.mark.parametrize(
    ("url", "body", "row"),
    [
        ("/predict", ["a fine day", 3], 2),
        ("/predict", [{"text": True}], 1),
        ("/predict", [["a fine day"], [2.5]], 2),
        ("/invocations", {"instances": ["a fine day", 7]}, 2),
    ],
)
def test_a_value_that_is_not_text_is_refused_as_the_model_refuses_it(
    text_model: tuple[Any, Any], url: str, body: Any, row: int
) -> None:
    model, client = text_model
    with pytest.raises(AttributeError):  # the model's own verdict on a number
        model.predict(["a fine day", 3])
    answer = client.post(url, json=body)
    assert answer.status_code == 400, answer.get_json()
    message = _message(answer.get_json())
    assert f"row {row}, column 'text': expected text" in message, message


def test_text_under_its_name_or_as_plain_values_is_answered_as_in_the_notebook(
    text_model: tuple[Any, Any],
) -> None:
    model, client = text_model
    texts = ["a fine day", "3"]  # text that reads as a number is still text
    expected = model.predict(texts).tolist()
    for body in (texts, [{"text": t} for t in texts], [[t] for t in texts]):
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["predictions"] == expected

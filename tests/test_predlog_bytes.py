"""The native API's requests reach the prediction log as their bytes (issue 29): the request
thread queues the body and the answer as sent, and the writer process reads the rows from
them; what is stored is what the decoded request would have stored. Real app, real queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import iris_frame
from tests.helpers import close_jobs
from winserve.backends.base import Prediction
from winserve.backends.local import LocalBackend
from winserve.model_info import ModelSpec
from winserve.predlog import record
from winserve.predlog.record import ANSWERS, LABELS, MAX_ROWS_STORED, Entry, record_of, replayed
from winserve.predlog.writer import PredictionLog
from winserve.protocols import native
from winserve.settings import Settings
from winserve.web import create_app
from winserve.web.prediction_log import RAW_MAX

pytestmark = pytest.mark.timeout(60)
NAMES = ("a", "b")


MOMENT = time.time()


def fields(n_rows: int) -> tuple[Any, ...]:
    return (MOMENT, "r1", "m", 1, "ab" * 32, "/predict", "POST", "127.0.0.1", 1.5, 200, n_rows)


def both_ways(body: Any, predictions: list[Any], probabilities: Any = None) -> tuple[Any, Any]:
    """(the Record of the request decoded on the request thread, the Record of its bytes
    read in the writer process), for the same body and answer."""
    sent = json.dumps(body).encode()
    answer: dict[str, Any] = {"predictions": predictions}
    if probabilities is not None:
        answer["classes"] = ["x", "y"]
        answer["probabilities"] = probabilities
    decoded = native.decode(body, probabilities is not None)
    prediction = Prediction(predictions, probabilities)
    n = decoded.n_rows
    walked = record_of(Entry(*fields(n), decoded, list(NAMES), prediction), True)
    queued = record_of(Entry(*fields(n), sent, NAMES, json.dumps(answer).encode()), True)
    assert type(queued[ANSWERS]) is bytes  # nothing walked on the request thread
    return walked, replayed(queued)


@pytest.mark.parametrize(
    ("body", "predictions", "probabilities"),
    [
        ({"a": 1.5, "b": "u"}, ["x"], None),  # one record
        ({"inputs": 1.5, "b": "u"}, ["x"], None),  # a column named "inputs" beside others
        ({"a": 1.5}, ["x"], None),  # one column
        ([{"a": [1, 2], "b": {"c": None}}], ["x"], None),  # values JSON nests
        ([{"a": 1, "b": None}, {"a": 2, "b": "v"}], ["x", "y"], [[0.25, 0.75], [1.0, 0.0]]),
        ([{"a": 1, "b": 2}, {"b": 3, "a": 4}], ["x", "y"], None),  # keys in another order
        ({"columns": ["b", "a"], "data": [[5, 6], [7, 8]]}, [0, 1], None),  # split
        ([[1, 2.5], [3, 4]], [0.5, 1.5], None),  # by position: the model's names
        (["some text", "more"], [1, 0], None),  # plain values
    ],
)
def test_a_request_read_from_its_bytes_is_stored_as_when_decoded_on_the_request_thread(
    body: Any, predictions: list[Any], probabilities: Any
) -> None:
    walked, read = both_ways(body, predictions, probabilities)
    assert read == walked
    assert read[LABELS] is not None and read[record.ROWS]


def test_a_large_request_from_its_bytes_keeps_a_sample_of_rows_with_their_own_answers() -> None:
    n = 3 * MAX_ROWS_STORED
    body = [{"a": i, "b": -i} for i in range(n)]
    walked, read = both_ways(body, list(range(n)))
    picks = read[record.PICKS]
    assert len(picks) == len(read[record.ROWS]) == len(read[ANSWERS]) == MAX_ROWS_STORED
    assert read[record.ROWS] == [[i, -i] for i in picks] and read[ANSWERS] == picks
    assert read[:LABELS] == walked[:LABELS]


def test_without_inputs_a_request_from_its_bytes_keeps_its_answers_only() -> None:
    entry = Entry(*fields(1), b'{"a": 1, "b": 2}', NAMES, b'{"predictions":[3]}\n')
    kept = record_of(entry, False)
    assert kept[record.ROWS] is None and kept[LABELS] is None  # the body is not queued at all
    read = replayed(kept)
    assert read[ANSWERS] == [3] and read[record.ROWS] is None and read[LABELS] is None


@pytest.fixture
def queued(tmp_path: Path, iris_forest: Path) -> Iterator[tuple[Any, PredictionLog]]:
    """An app whose log is never started: what the request thread queues stays there."""
    backend = LocalBackend(ModelSpec(str(iris_forest)))
    backend.start()
    backend.wait_ready(60)
    plog = PredictionLog(tmp_path / "log.sqlite")
    app = create_app(Settings(), backend, prediction_log=plog)
    yield app.test_client(), plog
    close_jobs(app)
    backend.close()


def test_the_request_thread_queues_the_native_apis_bytes_and_samples_a_larger_body(
    queued: tuple[Any, PredictionLog],
) -> None:
    client, plog = queued
    x, _ = iris_frame()
    records = x.iloc[:2].to_dict(orient="records")
    answer = client.post("/predict?proba=true", json=records)
    assert answer.status_code == 200
    [item] = plog._queue
    assert type(item) is tuple and item[ANSWERS] == answer.data  # the answer as sent
    assert json.loads(item[record.ROWS]) == records  # the body as sent
    stored = replayed((*item[:LABELS], tuple(x.columns), *item[LABELS + 1 :]))
    assert stored[record.ROWS] == [list(r.values()) for r in records]
    assert stored[record.PROBABILITIES] == answer.json["probabilities"]
    plog._queue.clear()
    many = x.sample(n=RAW_MAX // 60, replace=True, random_state=0).to_dict(orient="records")
    assert len(json.dumps(many)) > RAW_MAX
    assert client.post("/predict", json=many).status_code == 200
    [item] = plog._queue
    assert type(item) is bytes  # a large body: its sample pickled here, as before (record.py)

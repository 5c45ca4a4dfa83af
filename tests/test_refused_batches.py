"""A batch the model refuses is never answered row by row as if it had passed (issue 23).

A model reading dates in the format of a batch's first row (as ``pd.to_datetime`` does)
refuses "09.03.2023" beside "2021-05-03", though each row alone passes. Its answers for such a
batch are its error, never answers it gave each row alone; two users' requests that fail only
merged each get the answers the model gives them alone; a truly bad row is still named. Real
spawned model hosts throughout (a pool; a server for /predict and a CSV job)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import at_once, csrf_token, job_ended, running_server
from winserve.backends.base import row_errors
from winserve.backends.pool import PoolBackend
from winserve.errors import ModelInputError
from winserve.model_info import ModelSpec
from winserve.rows import CALL_STARTS

pytestmark = [pytest.mark.spawn, pytest.mark.timeout(180)]

MODEL = "tests.models:one_date_format"
GERMAN, ISO = "09.03.2023", "2021-05-03"


def _call(a: list[float], dates: list[str]) -> dict[str, Any]:
    return {"columns": {"a": a, "b": [1.0] * len(a), "signup": dates}}


@pytest.fixture(scope="module")
def pool() -> Iterator[PoolBackend]:
    # a long batch wait: requests released together share one model call
    backend = PoolBackend(ModelSpec(factory=MODEL), max_batch_wait_ms=300)
    backend.start()
    try:
        backend.wait_ready(60)
        yield backend
    finally:
        backend.close()


def _model_calls(pool: PoolBackend) -> float:
    samples = pool.batch_rows.collect()[0].samples
    return next(s.value for s in samples if s.name.endswith("_count"))


def test_requests_that_fail_only_merged_each_get_their_own_answers(pool: PoolBackend) -> None:
    german = _call([1.0, 2.0], [GERMAN, "29.09.2022"])
    iso = _call([10.0], [ISO])
    before = _model_calls(pool)
    results = at_once(pool, [german, iso, german, iso], 30)
    assert results == [[2.0, 3.0], [11.0], [2.0, 3.0], [11.0]], results
    assert _model_calls(pool) - before < 4  # some were merged (and refused) in one call


def test_a_request_the_model_refuses_as_a_whole_gets_its_error_not_rows_answered(
    pool: PoolBackend,
) -> None:
    """Each of its rows passes alone: still its error, whether alone or merged with others."""
    mixed = _call([1.0, 2.0], [GERMAN, ISO])
    good = _call([5.0], [ISO])
    for payloads in ([mixed], [mixed, good, good]):
        results = at_once(pool, payloads, 30)
        refused = results[0]
        assert isinstance(refused, ModelInputError), results
        assert "doesn't match the format of '09.03.2023'" in refused.message
        assert row_errors(refused) is None  # no row answered: CSV scoring reports them all
        assert results[1:] == [[6.0]] * (len(payloads) - 1)


def test_a_truly_bad_row_is_still_named_and_the_others_answered(pool: PoolBackend) -> None:
    bad = _call([1.0, -1.0, 3.0], [ISO, ISO, ISO])
    other = _call([7.0], [GERMAN])  # fails merged with the ISO dates, passes alone
    results = at_once(pool, [bad, other], 30)
    assert results[1] == [8.0]
    assert isinstance(results[0], ModelInputError)
    found = row_errors(results[0])
    assert found is not None and list(found.errors) == [1]
    assert found.errors[1].message.endswith("a must not be -1")
    assert found.prediction.predictions == [2.0, None, 4.0]


@pytest.mark.server
def test_a_server_answers_a_refused_batch_400_and_reports_its_rows_in_a_csv_job(
    tmp_path: Path,
) -> None:
    with running_server(["--factory", MODEL], cwd=tmp_path) as server:
        url = server.url
        rows = [
            {"a": 1.0, "b": 1.0, "signup": GERMAN},
            {"a": 2.0, "b": 1.0, "signup": ISO},
        ]
        answer = requests.post(f"{url}/predict", json=rows, timeout=30)
        assert answer.status_code == 400, answer.text
        message = answer.json()["error"]["message"]
        assert "doesn't match the format of '09.03.2023'" in message, message
        bad_row = [rows[1], {**rows[1], "a": -1.0}]  # a truly bad row: still named
        named = requests.post(f"{url}/predict", json=bad_row, timeout=30)
        assert named.status_code == 400
        message = named.json()["error"]["message"]
        assert message.startswith("row 2: ") and message.endswith("a must not be -1"), message
        fine = requests.post(f"{url}/predict", json=rows[:1], timeout=30)
        assert fine.status_code == 200 and fine.json()["predictions"] == [2.0]

        session = requests.Session()
        token = csrf_token(session.get(url + "/", timeout=30).text)
        data = "a,b,signup\n1,1,09.03.2023\n2,1,2021-05-03\n3,1,29.09.2022\n"
        job = session.post(
            url + "/jobs",
            data={"csrf_token": token},
            files={"file": ("dates.csv", data.encode(), "text/csv")},
            headers={"Origin": url},
            allow_redirects=False,
            timeout=60,
        )
        assert job.status_code == 303, job.text
        where = url + job.headers["Location"]
        status = job_ended(session, f"{where}/status")
        assert status["state"] == "done" and status["problem_count"] == 3, status
        result = session.get(f"{where}/result.csv", timeout=30).content.decode("utf-8-sig")
        scored = list(csv.DictReader(io.StringIO(result)))
        assert len(scored) == 3
        for row in scored:  # reported, not scored one by one with its own date reading
            assert row["prediction"] == "", row
            assert "doesn't match the format" in row["error"], row


def test_a_call_the_deadline_leaves_unasked_gets_no_other_calls_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``ISOLATE_SECONDS``, a merged call not yet asked alone is told so (a 500), not
    given the batch's error, which names another call's rows (in-process host: no spawn)."""
    from winserve.host import isolate
    from winserve.host.model_host import ModelHost

    host = ModelHost()
    assert host.load(ModelSpec(factory=MODEL))["ok"]
    merged = _call([1.0, 2.0], [GERMAN, ISO])
    merged[CALL_STARTS] = [0, 1]  # two calls merged, as the pool sends them
    assert host.predict(merged, False) == {
        "ok": True,
        "predictions": [2.0, 3.0],
        "probabilities": None,
        "scores": None,
    }
    monkeypatch.setattr(isolate, "ISOLATE_SECONDS", -1.0)
    answer = host.predict(merged, False)
    assert not answer["ok"] and "isolated" in answer
    assert answer["isolated"]["predictions"] == [None, None]
    assert answer["isolated"].get("refused") == [(0, isolate.UNTRIED), (1, isolate.UNTRIED)]


@pytest.mark.parametrize("dense_levels", [0, 2, 99])
def test_many_merged_calls_each_get_what_they_get_alone(
    monkeypatch: pytest.MonkeyPatch, dense_levels: int
) -> None:
    """Calls halved as groups of whole calls or asked one by one (``DENSE_LEVELS``): each
    gets what it gets alone, whatever the mix (in-process host: no spawn)."""
    from winserve.host import isolate
    from winserve.host.model_host import ModelHost

    monkeypatch.setattr(isolate, "DENSE_LEVELS", dense_levels)
    host = ModelHost()
    assert host.load(ModelSpec(factory=MODEL))["ok"]
    calls = [
        _call([1.0], [ISO]),
        _call([2.0, 3.0], [GERMAN, GERMAN]),
        _call([4.0, 5.0], [ISO, GERMAN]),  # refused as a whole
        _call([6.0], [ISO]),
        _call([7.0, -1.0, 8.0], [GERMAN] * 3),  # row 2 truly bad
        _call([9.0], [GERMAN]),
        _call([-1.0], [ISO]),  # one bad row
        _call([10.0], [ISO]),
    ]
    merged: dict[str, Any] = {"columns": {k: [] for k in ("a", "b", "signup")}}
    starts = []
    for call in calls:
        starts.append(len(merged["columns"]["a"]))
        for name, values in call["columns"].items():
            merged["columns"][name] += values
    merged[CALL_STARTS] = starts
    answer = host.predict(merged, False)
    assert not answer["ok"]
    isolated = answer["isolated"]
    assert isolated["predictions"] == [
        *[2.0, 3.0, 4.0, None, None, 7.0, 8.0, None, 9.0, 10.0, None, 11.0]
    ]
    assert [(row, e["message"]) for row, e in isolated["errors"]] == [
        (7, "a must not be -1"),
        (10, "a must not be -1"),
    ]
    refused = isolated.get("refused") or []
    assert [(row, "doesn't match the format" in e["message"]) for row, e in refused] == [(3, True)]

"""Accuracy once the truth is known (issue 26): the metrics against ``sklearn.metrics`` on
known data, their grouping per week and per version, outcomes joined with a real log file
(by request id, by a row of a larger request, by an input column), and uploads through the
app (in this process: the model is loaded here, the log file written by the store)."""

from __future__ import annotations

import io
import json
import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn import metrics as sk

from tests.log_entries import entry
from tests.model_files import customer_model
from winserve.backends.base import Prediction
from winserve.predlog import accuracy, outcomes, store
from winserve.predlog.accuracy import Joined
from winserve.service import PredictRequest

pytestmark = pytest.mark.timeout(60)

MONDAY = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()  # ISO week 2026-W49
WEEK = 7 * 86_400.0


# -- the metrics --------------------------------------------------------------------------------


def test_accuracy_and_macro_f1_are_sklearns_on_labels_compared_as_text() -> None:
    rng = np.random.default_rng(3)
    truth = rng.choice(["a", "b", "c", "never predicted"], size=500, p=[0.4, 0.3, 0.2, 0.1])
    said = np.where(rng.random(500) < 0.7, truth, rng.choice(["a", "b", "c", "never true"], 500))
    truth_l, said_l = [str(t) for t in truth], [str(s) for s in said]
    assert accuracy.accuracy(truth_l, said_l) == pytest.approx(
        sk.accuracy_score(truth_l, said_l), abs=1e-12
    )
    assert accuracy.macro_f1(truth_l, said_l) == pytest.approx(
        sk.f1_score(truth_l, said_l, average="macro", zero_division=0), abs=1e-12
    )
    # a small case by hand: TP a=1, b=1; a predicted twice, true twice; b once, once; c 0/1
    assert accuracy.macro_f1(["a", "a", "b", "c"], ["a", "c", "b", "a"]) == pytest.approx(
        (2 * 1 / (2 + 2) + 2 * 1 / (1 + 1) + 0) / 3
    )


def test_mae_and_rmse_are_sklearns() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(10, 3, 400)
    said = truth + rng.normal(0, 1.5, 400)
    assert accuracy.mae(list(truth), list(said)) == pytest.approx(
        sk.mean_absolute_error(truth, said), rel=1e-12
    )
    assert accuracy.rmse(list(truth), list(said)) == pytest.approx(
        sk.root_mean_squared_error(truth, said), rel=1e-12
    )


def test_a_label_is_the_same_text_however_it_was_written() -> None:
    for same in (1, 1.0, "1", " 1.0 ", np.int64(1).item()):
        assert accuracy.label_text(same) == "1"
    assert accuracy.label_text("setosa ") == "setosa"
    assert accuracy.label_text(True) == "True"
    assert accuracy.label_text(0.5) == "0.5"
    assert accuracy.label_text("1e3") == "1e3"  # not rewritten: a text, not a class 1000
    assert accuracy.label_text("C-017") == "C-017"


def test_scores_are_per_week_and_per_version_newest_first_then_the_versions_whole() -> None:
    rows = [
        # version A: week 49, 3 of 4 right; week 50, 1 of 2
        Joined(MONDAY, "A", 1, "1"),
        Joined(MONDAY + 3600, "A", 0, "0"),
        Joined(MONDAY + 86_400, "A", "1", "1.0"),
        Joined(MONDAY + 86_400, "A", 1, "0"),
        Joined(MONDAY + WEEK, "A", 0, "0"),
        Joined(MONDAY + WEEK + 1, "A", 0, "1"),
        # version B, newer: week 50, 2 of 2
        Joined(MONDAY + WEEK + 60, "B", 1, "1"),
        Joined(MONDAY + WEEK + 90, "B", 0, "0"),
    ]
    found = [(s.version, s.week, s.rows, s.accuracy) for s in accuracy.scores(rows, False)]
    assert found == [
        ("B", "2026-W50 (from 2026-12-07)", 2, 1.0),
        ("B", "all", 2, 1.0),
        ("A", "2026-W50 (from 2026-12-07)", 2, 0.5),
        ("A", "2026-W49 (from 2026-11-30)", 4, 0.75),
        ("A", "all", 6, 4 / 6),
    ]
    week49 = accuracy.scores(rows[:4], False)[0]
    truth, said = ["1", "0", "1", "0"], ["1", "0", "1", "1"]
    assert week49.macro_f1 == pytest.approx(sk.f1_score(truth, said, average="macro"))


def test_the_chart_draws_a_line_per_version_through_its_weeks() -> None:
    from winserve.web import accuracy_chart

    assert accuracy.week_start(MONDAY + 3 * 86_400 + 5) == MONDAY - 12 * 3600  # 00:00 UTC
    rows = [
        Joined(MONDAY, "A", 1, "1"),
        Joined(MONDAY + WEEK, "A", 0, "1"),
        Joined(MONDAY + 2 * WEEK, "A", 1, "1"),
        Joined(MONDAY + 2 * WEEK, "B", 1, "1"),  # a new version: one week, a dot
    ]
    scores = accuracy.scores(rows, False)
    assert {s.start for s in scores if s.week != "all"} == {
        MONDAY - 12 * 3600 + k * WEEK for k in range(3)
    }
    svg = accuracy_chart.chart(scores, False, "Accuracy per week")
    assert svg.startswith('<svg class="chart monitor"') and 'aria-label="Accuracy per week"' in svg
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # A's 3 weeks, B's one
    assert "100 %" in svg and "Mon 30 Nov" in svg
    # A's line: 100 %, 0 %, 100 % (y at the top, the bottom, the top of the plot)
    line = svg[svg.index("<polyline") :].split('"')[1].split()
    tops = [float(point.split(",")[1]) for point in line]
    assert tops[0] == tops[2] < tops[1]
    regressor = accuracy_chart.chart(
        accuracy.scores([Joined(MONDAY, "A", 2.0, "3")], True), True, "MAE per week"
    )
    assert "MAE 1" in regressor
    assert accuracy_chart.chart(accuracy.scores([], False), False, "none") == ""


def test_a_regressors_scores_skip_a_prediction_that_is_not_a_number() -> None:
    rows = [
        Joined(MONDAY, "A", 2.0, "3"),
        Joined(MONDAY, "A", 5.0, "1.5"),
        Joined(MONDAY, "A", None, "4"),  # the model answered nothing for this row
    ]
    week, whole = accuracy.scores(rows, True)
    assert week.rows == 2 and week.skipped == 1
    assert week.mae == pytest.approx((1 + 3.5) / 2)
    assert week.rmse == pytest.approx(math.sqrt((1 + 3.5**2) / 2))
    assert whole.as_dict() == {
        "week": "all",
        "version": "A",
        "rows": 2,
        "mae": 2.25,
        "rmse": round(math.sqrt((1 + 3.5**2) / 2), 6),
        "skipped": 1,
    }


# -- outcomes joined with a real log file --------------------------------------------------------


def _picks(path: Path, request_id: str) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        sample = conn.execute(
            "SELECT sample FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()[0]
    finally:
        conn.close()
    picks: list[int] = json.loads(sample)
    return picks


def test_outcomes_join_by_request_id_and_by_a_row_of_a_larger_request(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    one = PredictRequest.from_columns({"a": [1.0], "b": [2.0]})
    three = PredictRequest.from_columns({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    many = PredictRequest.from_columns({"a": [float(i) for i in range(150)], "b": [0.0] * 150})
    conn = store.connect(path)
    store.write(
        conn,
        [
            entry(0, one, Prediction(["x"]), time=MONDAY),
            entry(1, three, Prediction(["p", "q", "r"]), time=MONDAY + 60),
            entry(2, many, Prediction([f"v{i}" for i in range(150)]), time=MONDAY + 120),
            entry(3, one, Prediction(["x"]), time=MONDAY, model="other"),
            entry(4, one, None, time=MONDAY, status=400),  # refused: no prediction
        ],
        keep_inputs=True,
    )
    conn.close()
    kept = _picks(path, "r2")  # 100 of 150 rows, drawn at random
    assert len(kept) == store.MAX_ROWS_STORED
    dropped = next(i for i in range(150) if i not in kept)
    given = {
        "r0": "x",  # one row: its id alone
        "r1-2": "q",  # the second row of three
        "r1": "p",  # three rows and no row named: no match
        f"r2-{kept[5] + 1}": "v0",  # a row kept of 150 (wrong, on purpose)
        f"r2-{dropped + 1}": "v1",  # a row the log did not keep
        "r1-4": "s",  # a fourth row of three
        "r3": "x",  # another model's request
        "r4": "x",  # a request refused before it predicted
    }
    saved = outcomes.save(path, "m", outcomes.REQUEST_ID, given, days=30, now=MONDAY + 200)
    assert (saved.stored, saved.matched, saved.unmatched, saved.not_kept) == (8, 3, 5, 2)
    assert saved.examples == ["r1", f"r2-{dropped + 1}", "r1-4", "r3", "r4"]
    found = outcomes.joined(path, "m", MONDAY - 1, MONDAY + 1000)
    assert found.stored == 8 and found.unmatched == 5
    assert sorted((j.prediction, j.outcome) for j in found.joined) == [
        ("q", "q"),
        (f"v{kept[5]}", "v0"),
        ("x", "x"),
    ]
    assert {j.version for j in found.joined} == {"ab" * 6}
    # no index is made on the log's requests (the writer would pay for it at every insert)
    conn = sqlite3.connect(path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert not {i for i in indexes if i.startswith("requests")} - {"requests_time"}
    # the period is the prediction's: nothing predicted before Monday
    assert outcomes.joined(path, "m", 0, MONDAY - 1).joined == ()


def test_a_scored_files_row_joins_by_its_request_id_cell_when_the_log_kept_it(
    tmp_path: Path,
) -> None:
    """A CSV job's entry (kind 'job', predlog/jobs.py) keeps a sample of the file's rows,
    its ``sample`` their line numbers: a scored row's ``request id`` cell is
    ``<upload's id>-<line>``."""
    path = tmp_path / "log.sqlite"
    store.connect(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO requests (request_id, time, model, version, sha256, route, method, "
        "latency_ms, status, n_rows, kind, predictions, sample) VALUES "
        "('up1', ?, 'm', 2, ?, '/jobs', 'POST', 900.0, 200, 500, 'job', '[\"a\",\"b\"]', "
        "'[5,9]')",
        (MONDAY, "cd" * 32),
    )
    conn.commit()
    conn.close()
    given = {"up1-9": "b", "up1-5": "b", "up1-6": "a", "up1": "a"}
    saved = outcomes.save(path, "m", outcomes.REQUEST_ID, given, days=30, now=MONDAY + 60)
    assert (saved.matched, saved.unmatched, saved.not_kept) == (2, 2, 1)
    assert saved.examples == ["up1-6", "up1"]
    found = outcomes.joined(path, "m", 0, 2e9).joined
    assert sorted((j.prediction, j.outcome, j.version) for j in found) == [
        ("a", "b", "cd" * 6),
        ("b", "b", "cd" * 6),
    ]


def test_outcomes_join_on_an_input_each_versions_newest_prediction_and_replace(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite"

    def asked(*ids: int) -> PredictRequest:
        return PredictRequest.from_columns(
            {"customer_id": list(ids), "a": [0.5] * len(ids), "b": [1.5] * len(ids)}
        )

    old, new = "11" * 32, "22" * 32
    conn = store.connect(path)
    store.write(
        conn,
        [
            entry(0, asked(1001, 1002), Prediction([0, 0]), time=MONDAY, sha256=old),
            entry(1, asked(1001), Prediction([1]), time=MONDAY + 10, sha256=old),  # newer
            entry(2, asked(1001, 1003), Prediction([1, 0]), time=MONDAY + WEEK, sha256=new),
        ],
        keep_inputs=True,
    )
    conn.close()
    assert outcomes.logged_columns(path, "m") == {"customer_id", "a", "b"}
    given = {"1001": "1", "1002": "1", "1003": "0", "1004": "1"}
    saved = outcomes.save(path, "m", "customer_id", given, days=30, now=MONDAY + WEEK + 5)
    assert (saved.stored, saved.matched, saved.unmatched, saved.examples) == (4, 3, 1, ["1004"])
    assert saved.searched_rows == 5 and not saved.search_cut
    found = outcomes.joined(path, "m", 0, MONDAY + 2 * WEEK)
    by_version = sorted((j.version, j.prediction, j.outcome) for j in found.joined)
    assert by_version == [
        ("111111111111", 0, "1"),  # 1002
        ("111111111111", 1, "1"),  # 1001: the old version's newest answer, not its first
        ("222222222222", 0, "0"),  # 1003
        ("222222222222", 1, "1"),  # 1001
    ]
    scores = {(s.version, s.week): s.accuracy for s in accuracy.scores(found.joined, False)}
    assert scores[("111111111111", "all")] == 0.5
    assert scores[("222222222222", "all")] == 1.0
    # uploaded again: the outcome of 1002 replaced, the others kept
    outcomes.save(path, "m", "customer_id", {"1002": "0"}, days=30, now=MONDAY + WEEK + 6)
    again = outcomes.joined(path, "m", 0, MONDAY + 2 * WEEK)
    assert again.stored == 4
    assert sorted((j.version, j.prediction, j.outcome) for j in again.joined)[0] == (
        "111111111111",
        0,
        "0",
    )
    # an upload prunes the matches predicted, and the outcomes uploaded, log_days before it:
    # with a day, the old version's answers go, the outcomes (uploaded this week) stay
    outcomes.save(path, "m", "customer_id", {"1003": "0"}, days=1, now=MONDAY + WEEK + 3600)
    pruned = outcomes.joined(path, "m", 0, 2e9)
    assert pruned.stored == 4 and {j.version for j in pruned.joined} == {"222222222222"}
    outcomes.save(path, "m", "customer_id", {"1003": "0"}, days=1, now=MONDAY + WEEK + 3 * 86_400)
    assert outcomes.joined(path, "m", 0, 2e9) == outcomes.Outcomes(1, (), 1, ("1003",))


def test_a_log_without_outcomes_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    assert outcomes.joined(path, "m", 0, 2e9) == outcomes.Outcomes(0, (), 0, ())
    store.connect(path).close()  # a log written, no outcomes table yet
    assert outcomes.joined(path, "m", 0, 2e9) == outcomes.Outcomes(0, (), 0, ())
    assert outcomes.logged_columns(tmp_path / "none.sqlite", "m") is None


# -- uploads through the app ----------------------------------------------------------------------


@pytest.fixture
def app_with_log(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The app serving the customer classifier (or, with ``indirect`` True, the regressor)
    in this process, with a prediction log that is not started (the test writes the file
    itself through the store)."""
    from winserve.backends.local import LocalBackend
    from winserve.model_info import ModelSpec
    from winserve.predlog.writer import PredictionLog
    from winserve.settings import Settings
    from winserve.web import create_app

    model = tmp_path / "churn.joblib"
    joblib.dump(customer_model(regressor=getattr(request, "param", False)), model)
    backend = LocalBackend(ModelSpec(str(model)))
    backend.start()
    backend.wait_ready(60)
    plog = PredictionLog(tmp_path / "log.sqlite")
    app = create_app(Settings(), backend, prediction_log=plog)
    yield app.test_client(), plog
    plog.close()
    app.extensions["winserve.scoring.jobs"].close()
    backend.close()


PROGRAM = {"X-Winserve-Client": "tests"}


def test_bad_uploads_get_a_400_that_names_the_problem(app_with_log: Any) -> None:
    client, plog = app_with_log
    name = client.get("/model").json["name"]
    request = PredictRequest.from_columns({"customer_id": [7], "a": [0.1], "b": [0.2]})
    conn = store.connect(plog.path)
    store.write(conn, [entry(0, request, Prediction([1]), model=name)], keep_inputs=True)
    conn.close()

    def sent(text: str, **query: str) -> Any:
        return client.post(
            "/outcomes",
            data=text.encode(),
            query_string=query,
            headers={**PROGRAM, "Content-Type": "text/csv"},
        )

    cases = [
        ("id,outcome\nr0,1\n", {}, "no 'request id' column (its columns: 'id', 'outcome')"),
        ("request id,result\nr0,1\n", {}, "no column 'outcome' (its columns: 'request id',"),
        ("request id,outcome\n,1\n", {}, "line 2 has no 'request id'"),
        ("request id,outcome\n", {}, "no outcomes under its first line"),
        ("phone,outcome\n1,1\n", {"key": "phone"}, "'phone' is not an input the log kept"),
    ]
    for text, query, expected in cases:
        answer = sent(text, **query)
        assert answer.status_code == 400, (text, answer.json)
        assert answer.json["error"]["code"] == "bad_request"
        assert expected in answer.json["error"]["message"], answer.json
    assert (
        "its logged inputs: 'a', 'b', 'customer_id'"
        in sent("phone,outcome\n1,1\n", key="phone").json["error"]["message"]
    )
    # a form without the page's CSRF value is refused; JSON is not a CSV
    form = client.post("/outcomes", data={"file": (io.BytesIO(b"request id,outcome\n"), "o.csv")})
    assert form.status_code == 403
    assert client.post("/outcomes", json={"r0": 1}, headers=PROGRAM).status_code == 400
    # from another computer, without a token: the owner's only
    stranger = client.post(
        "/outcomes",
        data=b"request id,outcome\nr0,1\n",
        headers={**PROGRAM, "Content-Type": "text/csv"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert stranger.status_code == 403
    # a good one, a semicolon-separated file with the key named by its input
    good = sent("customer_id;churned\n7;1\n8;0\n", key="customer_id", outcome="churned")
    assert good.status_code == 200, good.json
    assert good.json == {
        "model": name,
        "key": "customer_id",
        "skipped": 0,
        "stored": 2,
        "matched": 1,
        "unmatched": 1,
        "unmatched_examples": ["8"],
        "searched_rows": 1,
        "search_cut": False,
        "not_kept": 0,
    }
    section = client.get("/monitor.json").json["accuracy"]
    assert section["kind"] == "classifier"
    assert (section["outcomes"], section["joined_rows"], section["unmatched"]) == (2, 1, 1)
    assert section["scores"][-1] == {
        "week": "all",
        "version": "ab" * 6,
        "rows": 1,
        "accuracy": 1.0,
        "macro_f1": 1.0,
    }


def test_a_workbooks_outcomes_are_read_from_the_sheet_naming_the_columns(
    app_with_log: Any, tmp_path: Path
) -> None:
    import openpyxl

    client, plog = app_with_log
    name = client.get("/model").json["name"]
    request = PredictRequest.from_columns({"customer_id": [7], "a": [0.1], "b": [0.2]})
    conn = store.connect(plog.path)
    store.write(
        conn,
        [entry(i, request, Prediction([i % 2]), model=name) for i in range(3)],
        keep_inputs=True,
    )
    conn.close()
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Notes"
    notes.append(["written by hand"])
    sheet = book.create_sheet("Outcomes")
    sheet.append(["customer", "request id", "outcome"])
    sheet.append(["x", "r0", 0])  # a number cell: the class 0, as the log's 0
    sheet.append(["y", "r1", 0.0])
    sheet.append([None, None, None])  # a blank row
    sheet.append(["z", "r2", "0"])
    saved = tmp_path / "outcomes.xlsx"
    book.save(saved)

    def upload(**form: str) -> Any:
        return client.post(
            "/outcomes",
            data={"file": (io.BytesIO(saved.read_bytes()), "outcomes.xlsx"), **form},
            headers=PROGRAM,
        )

    answer = upload()
    assert answer.status_code == 200, answer.json
    assert (answer.json["stored"], answer.json["matched"]) == (3, 3)
    section = client.get("/monitor.json").json["accuracy"]
    assert section["scores"][-1]["accuracy"] == pytest.approx(2 / 3)  # r1 said 1
    # a sheet named that does not hold the columns: the columns it has are named
    wrong = upload(sheet="Notes")
    assert wrong.status_code == 400
    assert (
        "no 'request id' column (its columns: 'written by hand')" in wrong.json["error"]["message"]
    )
    sheet.cell(row=6, column=2, value="r2")  # the key without its outcome column's cell
    sheet.cell(row=6, column=3, value=None)
    sheet.cell(row=7, column=3, value="late")
    book.save(saved)
    late = upload()
    assert late.status_code == 400
    assert late.json["error"]["message"] == "row 7 has no 'request id'"


@pytest.mark.parametrize("app_with_log", [True], indirect=True)
def test_a_regressors_outcomes_give_mae_and_rmse_and_a_text_is_refused(
    app_with_log: Any,
) -> None:
    client, plog = app_with_log
    name = client.get("/model").json["name"]
    request = PredictRequest.from_columns({"customer_id": [7], "a": [0.1], "b": [0.2]})
    conn = store.connect(plog.path)
    store.write(
        conn,
        [
            entry(0, request, Prediction([2.0]), model=name),
            entry(1, request, Prediction([5.0]), model=name),
        ],
        keep_inputs=True,
    )
    conn.close()

    def sent(text: str) -> Any:
        return client.post(
            "/outcomes", data=text.encode(), headers={**PROGRAM, "Content-Type": "text/csv"}
        )

    refused = sent("request id;outcome\nr0;3\nr1;lots\n")
    assert refused.status_code == 400
    assert refused.json["error"]["message"] == (
        "line 3: the outcome 'lots' is not a number; this model is a regressor, its outcomes "
        "are numbers"
    )
    # a row over several lines (a quoted note with a line break) is named by its first line
    spread = sent('request id;note;outcome\nr0;;3\nr1;"two\nlines";lots\n')
    assert spread.status_code == 400
    assert spread.json["error"]["message"].startswith("line 3: the outcome 'lots' is not"), (
        spread.json
    )
    # semicolons and a decimal comma, as Excel writes them in much of Europe; a row whose
    # outcome is not known yet is skipped
    good = sent("request id;outcome\nr0;3\nr1;1,5\nr2;\n")
    assert good.status_code == 200, good.json
    assert (good.json["matched"], good.json["unmatched"], good.json["skipped"]) == (2, 0, 1)
    section = client.get("/monitor.json").json["accuracy"]
    assert section["kind"] == "regressor"
    whole = section["scores"][-1]
    assert whole["mae"] == pytest.approx((1 + 3.5) / 2)
    assert whole["rmse"] == pytest.approx(math.sqrt((1 + 3.5**2) / 2), abs=1e-6)
    assert "accuracy" not in whole
    page = client.get("/monitor").text
    assert '<th scope="col">MAE</th>' in page and "<td>2.25</td>" in page


def test_without_the_log_an_upload_says_so(tmp_path: Path) -> None:
    from tests.helpers import local_client
    from winserve.model_info import ModelSpec

    model = tmp_path / "spend.joblib"
    joblib.dump(customer_model(regressor=True), model)
    client = local_client(ModelSpec(str(model)))
    try:
        answer = client.post(
            "/outcomes",
            data=b"request id,outcome\nr1,2.5\n",
            headers={**PROGRAM, "Content-Type": "text/csv"},
        )
        assert answer.status_code == 400
        assert "the prediction log is off" in answer.json["error"]["message"]
        section = client.get("/monitor.json").json["accuracy"]
        assert section["scores"] == [] and "prediction log is off" in section["hint"]
    finally:
        client.application.extensions["winserve.scoring.jobs"].close()

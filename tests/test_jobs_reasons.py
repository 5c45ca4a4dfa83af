"""Each scored row's top reasons in the scoring result, when the upload asks (issue 25): the
inputs whose Shapley values against the reference sample are largest, through the page's
endpoints on a model loaded in this process (real joblib files, real reference files)."""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import openpyxl
import pandas as pd
import pytest
from flask.testing import FlaskClient

from tests.conftest import iris_frame
from tests.helpers import JOB_CLIENTS, csrf_token, job_ended, jobs_client, local_client
from winserve.model_info import ModelSpec
from winserve.scoring import reasons
from winserve.service import Service

COLUMNS = [f"x{i}" for i in range(5)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REASON = re.compile(r"(?P<column>\w+) = (?P<value>[^:]+): (?P<effect>[+-][0-9.,e+-]+)(?P<unit> %)?")


def _served(tmp_path: Path, model: Any, reference: pd.DataFrame | None) -> FlaskClient:
    """The page of ``model`` saved as a joblib file, with ``reference`` beside it."""
    path = tmp_path / "churn.joblib"
    joblib.dump(model, path)
    if reference is not None:
        reference.to_csv(tmp_path / "churn.reference.csv", index=False)
    client = local_client(ModelSpec(path=str(path)))
    JOB_CLIENTS.append(client)  # its scoring folder goes when the test ends (conftest)
    return client


def _linear() -> tuple[Any, pd.DataFrame]:
    """A linear regression on standardised inputs: each input's Shapley value is exactly
    coefficient × (value − the reference's mean)."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 5)), columns=COLUMNS)
    frame = (frame - frame.mean()) / frame.std()
    target = frame.to_numpy() @ np.array([3.0, -2.0, 0.5, 0.0, 1.5]) + rng.normal(size=300)
    return LinearRegression().fit(frame, target), frame.iloc[:120].reset_index(drop=True)


def _upload(client: FlaskClient, body: bytes, name: str = "rows.csv", **fields: str) -> Any:
    page = client.get("/").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "file": (io.BytesIO(body), name), **fields}
    return client.post("/jobs", data=data, content_type="multipart/form-data")


def _finished(client: FlaskClient, response: Any) -> dict[str, Any]:
    assert response.status_code == 303, response.get_data(as_text=True)
    job = response.headers["Location"].rsplit("/", 1)[-1]
    return job_ended(client, f"/jobs/{job}/status")


def _rows(client: FlaskClient, status: dict[str, Any], delimiter: str = ",") -> list[list[str]]:
    with client.get(f"/jobs/{status['id']}/result.csv") as response:
        text = response.get_data().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


@pytest.mark.timeout(120)
def test_each_rows_reasons_are_its_largest_contributions_in_order(tmp_path: Path) -> None:
    model, reference = _linear()
    client = _served(tmp_path, model, reference)
    values = [[1.2, -0.7, 2.0, 0.3, -1.1], [-0.4, 1.9, 0.1, -2.2, 0.8], [0.05, 0.0, -3.0, 1.0, 0.2]]
    lines = ["id," + ",".join(COLUMNS)]
    lines += [f"r{i}," + ",".join(repr(v) for v in row) for i, row in enumerate(values)]
    lines.insert(2, "bad,abc,1,1,1,1")  # not a number: an error, and no reasons
    lines.insert(3, "")  # a blank line: no prediction, no reasons, no request id
    status = _finished(client, _upload(client, ("\n".join(lines) + "\n").encode(), explain="true"))
    assert status["state"] == "done" and status["scored_rows"] == 3, status
    header, *scored = _rows(client, status)
    added = ["prediction", "reason 1", "reason 2", "reason 3", "error", "request id"]
    assert header == ["id", *COLUMNS, *added]
    bad, blank = scored[1], scored[2]
    assert bad[6:10] == ["", "", "", ""] and "x0" in bad[10], bad
    assert blank == [], blank  # an empty line stays empty
    mean = reference.mean()
    for row, got in zip(values, [scored[0], scored[3], scored[4]], strict=True):
        expected = {c: model.coef_[j] * (row[j] - mean[c]) for j, c in enumerate(COLUMNS)}
        top = sorted(COLUMNS, key=lambda c: -abs(expected[c]))[:3]
        found = [REASON.fullmatch(cell) for cell in got[7:10]]
        assert all(found), got
        assert [m["column"] for m in found if m] == top, (got, expected)
        for m in found:
            assert m is not None and m["unit"] is None  # a regressor: the prediction's units
            column = m["column"]
            assert float(m["value"]) == row[COLUMNS.index(column)]
            assert float(m["effect"]) == pytest.approx(expected[column], rel=1e-3)
        line = lines.index(",".join(got[:6])) + 1  # the request id names the file's line
        assert got[10] == "" and got[11] == f"{status['request_id']}-{line}", got


@pytest.mark.timeout(120)
def test_a_classifiers_reasons_are_percentage_points_written_in_the_files_own_way(
    tmp_path: Path,
) -> None:
    """A semicolon-separated file with decimal commas: each reason shows the input as the file
    had it and its effect on the predicted class's probability with a decimal comma."""
    from sklearn.linear_model import LogisticRegression

    data, species = iris_frame()
    model = LogisticRegression(max_iter=1000).fit(data, species)
    client = _served(tmp_path, model, data.sample(60, random_state=1))
    lines = [";".join(data.columns)]
    lines += [";".join(f"{v:g}".replace(".", ",") for v in data.iloc[i]) for i in (0, 60, 120)]
    status = _finished(
        client, _upload(client, ("\r\n".join(lines) + "\r\n").encode(), explain="on")
    )
    assert status["state"] == "done" and status["scored_rows"] == 3, status
    header, *scored = _rows(client, status, delimiter=";")
    assert header[4:] == [
        "prediction",
        *[f"probability {c}" for c in model.classes_],
        "reason 1",
        "reason 2",
        "reason 3",
        "error",
        "request id",
    ]
    for line, got in zip(lines[1:], scored, strict=True):
        cells = dict(zip(data.columns, line.split(";"), strict=True))
        for cell in got[8:11]:
            column, rest = cell.split(" = ", 1)
            shown, effect = rest.split(": ")
            assert shown == cells[column], cell  # "5,1" as in the file
            assert re.fullmatch(r"[+-]\d+,\d %", effect), cell  # "+12,3 %" points


@pytest.mark.timeout(120)
def test_a_workbooks_rows_get_their_reasons_as_text_cells(tmp_path: Path) -> None:
    model, reference = _linear()
    client = _served(tmp_path, model, reference)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(COLUMNS)
    sheet.append([1.2, -0.7, 2.0, 0.3, -1.1])
    sheet.append([-0.4, 1.9, 0.1, -2.2, 0.8])
    saved = io.BytesIO()
    book.save(saved)
    status = _finished(client, _upload(client, saved.getvalue(), "rows.xlsx", explain="true"))
    assert status["state"] == "done" and status["scored_rows"] == 2, status
    with client.get(f"/jobs/{status['id']}/result.xlsx") as response:
        assert response.mimetype == XLSX
        scored = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    rows = [list(r) for r in scored[scored.sheetnames[0]].iter_rows(values_only=True)]
    assert rows[0][5:] == ["prediction", "reason 1", "reason 2", "reason 3", "error", "request id"]
    for row in rows[1:]:
        assert all(isinstance(c, str) and REASON.fullmatch(c) for c in row[6:9]), row
        assert row[9] is None  # no error


def test_reasons_of_a_model_without_a_reference_sample_are_refused_at_once() -> None:
    """409 with the file to add, before the file is scored; nothing is left queued."""
    client = jobs_client()
    response = _upload(client, b"a,b\n1,2\n", explain="true")
    assert response.status_code == 409, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert "reference sample" in text and ".reference.csv" in text
    assert not client.application.extensions["winserve.scoring.jobs"].busy()
    assert "csv-explain" not in client.get("/").get_data(as_text=True)  # no box to tick


def test_the_explain_field_is_true_or_false() -> None:
    client = jobs_client()
    response = _upload(client, b"a,b\n1,2\n", explain="maybe")
    assert response.status_code == 400
    text = html.unescape(response.get_data(as_text=True))
    assert "explain must be true or false, not 'maybe'" in text
    assert not client.application.extensions["winserve.scoring.jobs"].busy()


@pytest.mark.timeout(120)
def test_a_file_of_more_rows_than_are_explained_is_refused_before_any_model_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, reference = _linear()
    client = _served(tmp_path, model, reference)
    assert "csv-explain" in client.get("/").get_data(as_text=True)  # the box to tick
    monkeypatch.setattr(reasons, "MAX_EXPLAINED_ROWS", 3)
    calls: list[str] = []
    for name in ("predict_prepared", "explain"):
        real = getattr(Service, name)

        def counted(
            self: Service, *args: Any, _real: Any = real, _name: str = name, **options: Any
        ) -> Any:
            calls.append(_name)
            return _real(self, *args, **options)  # a job's chunk is a background call (#29)

        monkeypatch.setattr(Service, name, counted)
    rows = "\n".join(",".join(["1"] * 5) for _ in range(4))
    body = (",".join(COLUMNS) + "\n" + rows + "\n\n").encode()
    status = _finished(client, _upload(client, body, explain="true"))
    assert status["state"] == "failed" and calls == [], (status, calls)
    assert status["error"].startswith("the file has more than 3 rows, the most that are scored")
    # three rows (and blank lines) are within it, and each is explained once
    three = (",".join(COLUMNS) + "\n" + "\n".join(rows.splitlines()[:3]) + "\n\n").encode()
    status = _finished(client, _upload(client, three, explain="true"))
    assert status["state"] == "done" and calls.count("explain") == 3, (status, calls)


@pytest.mark.timeout(120)
def test_a_model_that_cannot_be_explained_says_why_once_and_is_asked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two outputs a row: no one number to share out. Every row is still scored, says why it
    has no reasons, and the model is not asked again for each row."""
    from sklearn.linear_model import LinearRegression

    model, reference = _linear()
    two = LinearRegression().fit(reference, np.c_[model.predict(reference), reference["x0"]])
    client = _served(tmp_path, two, reference)
    asked: list[int] = []
    real = Service.explain

    def counted(self: Service, *args: Any) -> Any:
        asked.append(1)
        return real(self, *args)

    monkeypatch.setattr(Service, "explain", counted)
    rows = "\n".join(",".join(["0.5"] * 5) for _ in range(4))
    status = _finished(
        client, _upload(client, (",".join(COLUMNS) + "\n" + rows).encode(), explain="1")
    )
    assert status["state"] == "done" and status["scored_rows"] == 4, status
    header, *scored = _rows(client, status)
    assert header[5:] == [
        "prediction 1",
        "prediction 2",
        "reason 1",
        "reason 2",
        "reason 3",
        "error",
        "request id",
    ]
    for got in scored:
        assert got[7].startswith("not explained: explanations need a number to share out"), got
        assert got[8:11] == ["", "", ""], got
    assert len(asked) == 1


def test_a_reason_is_never_in_scientific_notation_nor_an_effect_of_nothing() -> None:
    """A new user's trial found ``plan = pro: +1,585e+04`` in a spreadsheet cell and
    ``plan = basic: -0.0 %`` among the reasons."""
    from winserve.model_info import Feature, ModelInfo
    from winserve.scoring.reasons import reason_texts

    info = ModelInfo(
        name="m",
        model_type="t",
        task="regression",
        features=[Feature(name="plan", kind="category"), Feature(name="income", kind="number")],
        feature_names_known=True,
    )
    regressor = {"explained": "prediction", "contributions": {"plan": 15850.3, "income": 0.5}}
    texts = reason_texts(regressor, ["pro", 62000.5], info, 3, decimal_comma=True)
    assert texts == ["plan = pro: +15850", "income = 62000,5: +0,5", ""]
    classifier = {"explained": "probability", "contributions": {"plan": -0.0004, "income": 0.2}}
    assert reason_texts(classifier, ["basic", 1.0], info, 3) == ["income = 1.0: +20.0 %", "", ""]

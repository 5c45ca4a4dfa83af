"""CSV scoring of a raw-text model (a TfidfVectorizer pipeline fitted on a list of documents):
each line of a one-column file is one text, exactly as ``model.predict(lines)`` gets them from
the file read line by line. The first line names the column only when it is the model's text
input (``text``); a blank line is the text ``""``, scored as predict scores it, or refused on its
own line by a model that refuses empty texts. Real servers, real files."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
import requests

from tests import csv_server, text_models, zoo
from tests.helpers import running_server

pytestmark = [pytest.mark.spawn, pytest.mark.server]

# a separator inside a text, a blank line, a text pandas would read as missing, and a
# blank last line: all of them texts when the file is read line by line
LINES = ["great product, works well", "", "NA", "poor; slow; bad", "works as described", ""]


def _serve(model: object, folder: Path) -> Iterator[str]:
    path = folder / "reviews.joblib"
    joblib.dump(model, path)
    with running_server([str(path)], cwd=folder) as server:
        yield server.url


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    model = zoo.text_pipeline().model
    for url in _serve(model, tmp_path_factory.mktemp("reviews")):
        yield url, model


def _score(url: str, lines: list[str]) -> tuple[dict[str, object], list[str], list[list[str]]]:
    session = requests.Session()
    job = csv_server.submit(session, f"{url}/", "\n".join(lines).encode() + b"\n")
    status = csv_server.finished(session, url, job)
    assert status["state"] == "done", status
    header, rows = csv_server.scored(session, url, job)
    return status, header, rows


def _same_as_predict(model: object, texts: list[str], rows: list[list[str]]) -> None:
    want = list(model.predict(texts))  # type: ignore[attr-defined]
    probabilities = model.predict_proba(texts).tolist()  # type: ignore[attr-defined]
    assert [r[0] for r in rows] == texts
    assert [r[1] for r in rows] == want
    for row, expected in zip(rows, probabilities, strict=True):
        got = [float(p) for p in row[2:4]]
        assert all(math.isclose(g, w, abs_tol=1e-9) for g, w in zip(got, expected, strict=True))
        assert row[4] == ""


def test_a_file_of_texts_without_a_header_is_all_data(reviews: tuple[str, object]) -> None:
    url, model = reviews
    status, header, rows = _score(url, LINES)
    added = ["prediction", "probability bad", "probability good", "error", "request id"]
    assert header == ["text", *added]  # the request id last (issue 27)
    assert status["scored_rows"] == len(LINES) and status["problem_count"] == 0
    _same_as_predict(model, LINES, rows)  # the first line too: it does not name the column


def test_a_first_line_naming_the_text_column_is_the_header(reviews: tuple[str, object]) -> None:
    url, model = reviews
    status, header, rows = _score(url, ["text", *LINES])
    assert header[0] == "text" and status["scored_rows"] == len(LINES)
    _same_as_predict(model, LINES, rows)


def test_a_model_that_refuses_empty_texts_gets_an_error_on_that_line(
    tmp_path: Path,
) -> None:
    model = text_models.refusing_empty_texts()
    for url in _serve(model, tmp_path):
        session = requests.Session()
        job = csv_server.submit(session, f"{url}/", b"text\nworks as described\n\nawful\n")
        status = csv_server.finished(session, url, job)
        assert status["state"] == "done" and status["scored_rows"] == 2, status
        assert status["problem_count"] == 1
        _, rows = csv_server.scored(session, url, job)
        assert [r[0] for r in rows] == ["works as described", "", "awful"]
        first, last = model.predict(["works as described", "awful"])
        assert [r[1] for r in rows] == [first, "", last]
        assert "an empty text cannot be scored" in rows[1][-2]
        page = session.get(f"{url}{job}", timeout=10).text
        assert "<td>3</td>" in page  # the blank line's number (the header is line 1)


def test_a_text_excel_quoted_is_read_without_its_quotes(reviews: tuple[str, object]) -> None:
    url, model = reviews
    quoted = ['"works, great"', '"poor, slow,\nbad"', 'said ""fine""']
    _, _, rows = _score(url, quoted)
    _same_as_predict(model, ["works, great", "poor, slow,\nbad", 'said ""fine""'], rows)

"""A scored CSV copies each line of the file as it was written and adds winserve's cells after
it (issue 29: the user's cells were parsed and written again); only a row that is not one line
of the file, or longer than the first line, is written by csv, and an added cell that needs
quotes gets them."""

from __future__ import annotations

import csv
import io
from typing import Any

import pandas as pd
import pytest

from tests.helpers import csrf_token, job_ended, jobs_client
from winserve.scoring.scored_copy import field_end

pytestmark = pytest.mark.timeout(60)


def _scored(text: str) -> tuple[dict[str, Any], str]:
    client = jobs_client()  # tests.models:chaos: predicts a + 1
    token = csrf_token(client.get("/").get_data(as_text=True))
    data = {"csrf_token": token, "file": (io.BytesIO(text.encode()), "rows.csv")}
    response = client.post("/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    job = response.headers["Location"].rsplit("/", 1)[-1]
    status = job_ended(client, f"/jobs/{job}/status", 30)
    assert status["state"] == "done", status
    with client.get(f"/jobs/{status['id']}/result.csv") as result:
        return status, result.get_data().decode("utf-8-sig")


def test_each_line_is_copied_as_written_with_the_added_cells() -> None:
    status, scored = _scored('id,a,b\n"r, 1",2007,1\n"r2",2008,1\nr3,2009,1\n')
    rid = status["request_id"]
    assert scored.split("\r\n") == [
        "id,a,b,prediction,error,request id",
        f'"r, 1",2007,1,2008.0,,{rid}-2',
        f'"r2",2008,1,2009.0,,{rid}-3',  # its quotes, which csv would have dropped
        f"r3,2009,1,2010.0,,{rid}-4",
        "",
    ]
    assert list(csv.reader(io.StringIO(scored)))[1] == [
        "r, 1",
        "2007",
        "1",
        "2008.0",
        "",
        f"{rid}-2",
    ]


def test_a_row_over_two_lines_is_written_by_csv_and_an_empty_one_kept_empty() -> None:
    status, scored = _scored('id,a,b\r\n"two\r\nlines",2007,1\r\n\r\nr3,2009,1\r\n')
    rid = status["request_id"]
    assert status["scored_rows"] == 2, status
    assert list(csv.reader(io.StringIO(scored))) == [
        ["id", "a", "b", "prediction", "error", "request id"],
        ["two\r\nlines", "2007", "1", "2008.0", "", f"{rid}-2"],  # named by its first line
        [],  # an empty line stays empty: no prediction, no request id
        ["r3", "2009", "1", "2010.0", "", f"{rid}-5"],
    ]
    # read_csv skips it in both files: the copy's rows pair up with the file's by position
    source = pd.read_csv(io.StringIO('id,a,b\r\n"two\r\nlines",2007,1\r\n\r\nr3,2009,1\r\n'))
    copy = pd.read_csv(io.StringIO(scored))
    assert list(copy["id"]) == list(source["id"]) and len(copy) == 2


def test_a_row_over_several_lines_is_named_by_its_first_line() -> None:
    """Where the user looks for it, as the message of a quote never closed names it too."""
    client = jobs_client()
    token = csrf_token(client.get("/").get_data(as_text=True))
    text = 'id,a,b\r\nr1,2007,1\r\n"three\r\nline\r\nnote",-1,1\r\nr4,2009,1\r\n'
    data = {"csrf_token": token, "file": (io.BytesIO(text.encode()), "rows.csv")}
    response = client.post("/jobs", data=data, content_type="multipart/form-data")
    job = response.headers["Location"].rsplit("/", 1)[-1]
    status = job_ended(client, f"/jobs/{job}/status", 30)
    assert status["state"] == "done" and status["problem_count"] == 1, status
    page = client.get(f"/jobs/{job}").get_data(as_text=True)
    assert "<td>3</td>" in page and "<td>5</td>" not in page, page
    assert "a must not be -1" in page


def test_lines_beside_a_blank_or_ragged_one_keep_what_the_file_wrote() -> None:
    """A chunk with a blank, short or long line was written by csv whole: every line of it
    lost its quotes ("007" became 007) and a long line its cells past the first line's
    columns. Now only what must be is written by csv."""
    text = 'id,a,b\n"007",2007,1\n\n"r3",2009\n"r4",2010,1,"extra, cell",more\n"r5",2011,1\n'
    status, scored = _scored(text)
    rid = status["request_id"]
    lines = scored.split("\r\n")
    assert lines[1] == f'"007",2007,1,2008.0,,{rid}-2'  # quotes kept
    assert lines[2] == ""  # an empty line stays empty: no prediction, no request id
    short = "has 2 values; the first line names 3 columns"
    assert lines[3] == f'"r3",2009,,,{short},{rid}-4'  # padded, so the columns line up
    long = "has 5 values; the first line names 3 columns"
    # a long line: its first cells as written, the added ones, then the rest (kept)
    assert lines[4] == f'"r4",2010,1,,{long},{rid}-5,"extra, cell",more'
    assert lines[5] == f'"r5",2011,1,2012.0,,{rid}-6'
    assert status["scored_rows"] == 2 and status["problem_count"] == 2, status


@pytest.mark.parametrize(
    ("line", "cells", "end"),
    [
        ("a,b,c", 2, 3),
        ('"a,b",c,d', 1, 5),  # a separator inside quotes is part of the cell
        ('"say ""hi"", x",c', 1, 15),  # "" is a quote inside a quoted cell
        ('5" tv,b,c', 1, 5),  # a quote inside an unquoted cell opens nothing
        ("a,b", 2, -1),
        ("", 1, -1),
    ],
)
def test_where_a_cell_ends_is_found_as_csv_reads_the_line(line: str, cells: int, end: int) -> None:
    assert field_end(line, ",", cells) == end
    if end >= 0:  # the cells before it are the ones csv reads
        first = next(csv.reader([line[:end]]))
        assert first == next(csv.reader([line]))[:cells]

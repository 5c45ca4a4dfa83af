"""A scored CSV copies each line of the file as it was written and adds winserve's cells after
it (issue 29: the user's cells were parsed and written again); a line that is not one line
of the file, or an added cell that needs quotes, is written by csv as before."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.helpers import csrf_token, job_ended, jobs_client

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


def test_a_row_over_two_lines_and_a_blank_one_are_written_by_csv() -> None:
    status, scored = _scored('id,a,b\r\n"two\r\nlines",2007,1\r\n\r\nr3,2009,1\r\n')
    rid = status["request_id"]
    assert status["scored_rows"] == 2, status
    assert list(csv.reader(io.StringIO(scored))) == [
        ["id", "a", "b", "prediction", "error", "request id"],
        ["two\r\nlines", "2007", "1", "2008.0", "", f"{rid}-3"],
        ["", "", "", "", "", ""],  # a blank line: no prediction, no request id
        ["r3", "2009", "1", "2010.0", "", f"{rid}-5"],
    ]

"""CSV scoring jobs through the page's endpoints (in-process model; the browser tests use a real
server): limits, bad rows, rows the model rejects, expiry, CSRF and hostile job ids."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.csv_models import FORMULA_ERROR, FORMULA_LABELS
from tests.helpers import csrf_token, job_ended, jobs_client
from winserve.scoring import csv_scoring
from winserve.scoring.scored_copy import ScoredCopy
from winserve.spreadsheet import Dialect


def _token(client: FlaskClient) -> str:
    return csrf_token(client.get("/").get_data(as_text=True))


def _submit(client: FlaskClient, text: str | bytes, **extra: Any) -> Any:
    body = text if isinstance(text, bytes) else text.encode()
    data = {"csrf_token": _token(client), "file": (io.BytesIO(body), "rows.csv"), **extra}
    return client.post("/jobs", data=data, content_type="multipart/form-data")


def _paste(client: FlaskClient, text: str) -> Any:
    """Rows pasted into the page (for large texts: the test client spools a large upload to a
    temporary file that it leaves open)."""
    return client.post("/jobs", data={"csrf_token": _token(client), "rows": text})


def _finished(client: FlaskClient, response: Any) -> dict[str, Any]:
    assert response.status_code == 303, response.get_data(as_text=True)
    job = response.headers["Location"].rsplit("/", 1)[-1]
    return job_ended(client, f"/jobs/{job}/status", 30)


def _scored(
    client: FlaskClient, status: dict[str, Any], delimiter: str = ","
) -> list[dict[str, str]]:
    with client.get(f"/jobs/{status['id']}/result.csv") as response:
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment")
        data = response.get_data()
    assert data.startswith(codecs.BOM_UTF8)  # so that Excel reads it as UTF-8
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


def test_rows_the_model_rejects_are_isolated_and_the_rest_scored() -> None:
    client = jobs_client()
    # a = 2000 + i stays clear of the values the test model misbehaves on (999, 666, 13, 11)
    lines = ["id,a,b"] + [f"r{i},{-1 if i in (3, 1500) else 2000 + i},1" for i in range(2500)]
    status = _finished(client, _submit(client, "\n".join(lines) + "\n"))
    assert status["state"] == "done" and status["scored_rows"] == 2498
    assert status["problem_count"] == 2
    scored = _scored(client, status)
    assert [r["id"] for r in scored] == [f"r{i}" for i in range(2500)]
    assert scored[4]["prediction"] == "2005.0" and scored[4]["error"] == ""
    assert scored[3]["prediction"] == "" and "a must not be -1" in scored[3]["error"]
    assert "a must not be -1" in scored[1500]["error"]
    page = client.get(f"/jobs/{status['id']}").get_data(as_text=True)
    assert "<td>5</td>" in page and "<td>1502</td>" in page  # line numbers, header is line 1
    # the job's time as people read it: a short job is not "0.0 s"
    took = re.search(r"Done: 2,498 of 2,500 rows scored in ([^<]*)\.", page)
    assert took is not None and took.group(1).endswith(" s"), page
    assert abs(float(took.group(1)[:-2]) - status["seconds"]) <= 0.06, (took.group(1), status)


def test_each_rejected_line_gets_its_own_reason_from_one_isolating_call() -> None:
    """The model host finds the failing rows of a chunk (issue 14): a rejected input and a
    bug of the model in the same chunk each keep their own message, as each line alone gets."""
    client = jobs_client()
    lines = ["a,b"] + [f"{v},1" for v in (1, -1, 2, 13, 3)]
    status = _finished(client, _submit(client, "\n".join(lines) + "\n"))
    assert status["state"] == "done" and status["scored_rows"] == 3
    assert status["problem_count"] == 2
    scored = _scored(client, status)
    assert [r["prediction"] for r in scored] == ["2.0", "", "3.0", "", "4.0"]
    assert [r["error"] for r in scored] == [
        "",
        # the model's error names no column: the one whose change alone makes the row
        # answered is named (issue 22); a bug of the model (500) is left as it is
        "the model rejected the input: ValueError: a must not be -1 (column 'a': the model "
        "answers this row with another value there)",
        "",
        "the model failed: RuntimeError: unlucky number",
        "",
    ]


def test_a_file_without_the_model_columns_fails_with_the_names() -> None:
    client = jobs_client()
    status = _finished(client, _submit(client, "x,y\n1,2\n"))
    assert status["state"] == "failed"
    assert "the CSV has no columns 'a', 'b'" in status["error"]
    assert status["error"].endswith("it names 'x', 'y'")
    # its result: 409, saying it failed and why (it read "has not finished", 400)
    where = f"/jobs/{status['id']}/result.csv"
    result = client.get(where, headers={"Accept": "application/json"})  # a program
    body = json.loads(result.get_data(as_text=True))
    assert result.status_code == 409 and body["error"]["code"] == "job_failed", body
    said = body["error"]["message"]
    assert said == f"this job failed, so it has no result: {status['error']}"
    page = client.get(where)  # a browser: the error page says the same
    assert page.status_code == 409 and "this job failed, so it has no result" in page.get_data(
        as_text=True
    )


def test_excel_csv_from_a_decimal_comma_locale_comes_back_the_same_way() -> None:
    """Excel's "CSV" on a German or French PC: semicolons, decimal commas, Windows-1252."""
    client = jobs_client()
    text = "Kunde;a;b\r\nMüller;1,5;2\r\nLefèvre;-0,25;1\r\nZoë;3;,5\r\n"
    status = _finished(client, _submit(client, text.encode("cp1252")))
    assert status["state"] == "done" and status["scored_rows"] == 3, status
    assert status["read_as"] == "semicolon-separated, decimal comma, Windows-1252"
    scored = _scored(client, status, delimiter=";")
    assert [r["Kunde"] for r in scored] == ["Müller", "Lefèvre", "Zoë"]
    assert [r["prediction"] for r in scored] == ["3,5", "0,75", "3,5"]
    page = client.get(f"/jobs/{status['id']}").get_data(as_text=True)
    assert "Read as semicolon-separated, decimal comma, Windows-1252" in page


def test_rows_pasted_from_a_spreadsheet_are_tab_separated() -> None:
    client = jobs_client()
    pasted = "a\tb\r\n1\t2\r\n3,5\t1\r\n"  # copied cells: tabs, and this PC's decimal comma
    response = client.post("/jobs", data={"csrf_token": _token(client), "rows": pasted})
    status = _finished(client, response)
    assert status["state"] == "done" and status["read_as"].startswith("tab-separated, decimal")
    assert [r["prediction"] for r in _scored(client, status, "\t")] == ["3,0", "4,5"]


@pytest.mark.parametrize(
    ("text", "bad_row"),
    [
        ("a\tb\n1,234\t1\n7\t1\n", 0),  # 1,234: a thousands group or a decimal? an error
        ("a\tb\n1,5\t1\n2.5\t1\n", 0),  # a decimal point elsewhere: 1,5 is not read as 1.5
    ],
)
def test_a_comma_that_may_not_be_decimal_is_an_error_not_a_guess(text: str, bad_row: int) -> None:
    client = jobs_client()
    status = _finished(client, _submit(client, text))
    assert status["state"] == "done" and status["scored_rows"] == 1, status
    scored = _scored(client, status, "\t")
    assert scored[bad_row]["prediction"] == "" and "expected a number" in scored[bad_row]["error"]


def test_empty_columns_and_rows_from_excel_are_kept_and_not_errors() -> None:
    """Cells formatted but empty come out as unnamed columns and as rows of separators."""
    client = jobs_client()
    text = "a;b;;\r\n1;2;;\r\n;;;\r\n\r\n3;4;;\r\n;;;\r\n"  # and empty rows, kept as they are
    status = _finished(client, _submit(client, text))
    assert status["state"] == "done" and status["problem_count"] == 0, status
    assert status["scored_rows"] == status["total_rows"] == status["done_rows"] == 2
    with client.get(f"/jobs/{status['id']}/result.csv") as response:
        lines = response.get_data().decode("utf-8-sig").splitlines()
    rid = status["request_id"]  # each scored row's id: the upload's, and its line (issue 27)
    assert rid
    assert lines == [
        "a;b;;;prediction;error;request id",
        f"1;2;;;3.0;;{rid}-2",
        ";;;;;;",  # blank rows were not predictions: no request id
        "",  # the empty line stays empty (read_csv skips it in the file and the copy)
        f"3;4;;;7.0;;{rid}-5",
        ";;;;;;",
    ]


def test_excel_unicode_text_and_files_that_are_not_text() -> None:
    client = jobs_client()
    unicode_text = _finished(client, _submit(client, "a\tb\r\n1\t2\r\n".encode("utf-16")))
    assert unicode_text["state"] == "done" and unicode_text["read_as"].endswith("UTF-16")
    assert [r["prediction"] for r in _scored(client, unicode_text, "\t")] == ["3.0"]
    binary = _finished(client, _submit(client, b"a,b\n\x81\x8d\xff,1\n"))
    assert binary["state"] == "failed"
    assert "not text in UTF-8 or Windows-1252" in binary["error"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a,b\n", "the file has no rows under its first line"),
        ("a,a\n1,2\n", "the column 'a' appears twice"),
        (
            "a,b\n" + "1,2\n" * 11,
            "the file has 11 rows, more than the 10 allowed (setting: max_csv_rows)",
        ),
    ],
)
def test_file_level_problems(text: str, needle: str) -> None:
    client = jobs_client(max_csv_rows=10)
    status = _finished(client, _submit(client, text))
    assert status["state"] == "failed" and needle in status["error"]


def test_too_large_a_file_is_refused_naming_the_setting() -> None:
    client = jobs_client(max_csv_mb=0.01)  # about 10 kB
    response = _submit(client, "a,b\n" + "1,2\n" * 5000)
    assert response.status_code == 413
    assert "max_csv_mb" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"  # a page, for the person who uploaded


def test_pasted_rows_and_no_input() -> None:
    client = jobs_client()
    pasted = client.post("/jobs", data={"csrf_token": _token(client), "rows": "a,b\n1,2\n3,4"})
    status = _finished(client, pasted)
    assert status["state"] == "done" and status["scored_rows"] == 2
    assert [r["prediction"] for r in _scored(client, status)] == ["3.0", "7.0"]
    empty = client.post("/jobs", data={"csrf_token": _token(client), "rows": "  "})
    assert empty.status_code == 400 and "choose a CSV file" in empty.get_data(as_text=True)


def test_forms_need_the_csrf_token() -> None:
    client = jobs_client()
    _token(client)  # the browser has its cookie
    for path, data in (("/jobs", {"rows": "a,b\n1,2"}), ("/", {"f0": "1", "f1": "2"})):
        response = client.post(path, data=data)
        assert response.status_code == 403, path
        assert "reload the page" in response.get_data(as_text=True)
        forged = client.post(path, data={**data, "csrf_token": "0" * 64})
        assert forged.status_code == 403
    fresh = jobs_client()  # no cookie at all, a token copied from someone else's page
    stolen = fresh.post("/", data={"f0": "1", "f1": "2", "csrf_token": _token(client)})
    assert stolen.status_code == 403


@pytest.mark.parametrize(
    "job_id", ["../../etc/passwd", "..%2F..%2Fetc", "0" * 32, "ABC", "%00", "a" * 500]
)
def test_hostile_job_ids_are_404(job_id: str) -> None:
    client = jobs_client()
    for suffix in ("", "/status", "/result.csv"):
        response = client.get(f"/jobs/{job_id}{suffix}")
        assert response.status_code == 404, (job_id, suffix)
        text = response.get_data(as_text=True)
        assert "winserve-jobs" not in text and "Traceback" not in text  # nothing of ours leaks


def test_results_expire() -> None:
    client = jobs_client(keep_results_minutes=0.01)  # 0.6 s
    status = _finished(client, _submit(client, "a,b\n1,2\n"))
    with client.get(f"/jobs/{status['id']}/result.csv") as kept:
        assert kept.status_code == 200
    time.sleep(0.8)
    assert client.get(f"/jobs/{status['id']}/result.csv").status_code == 404


def test_jobs_at_a_time_are_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two files are scored at a time; a third is told to come back (the scoring itself is
    held on an event here: this test is about admission, not scoring)."""
    client = jobs_client()
    manager = client.application.extensions["winserve.scoring.jobs"]
    release = threading.Event()
    monkeypatch.setattr(manager, "_run", lambda job: release.wait(30))
    try:
        assert _submit(client, "a,b\n1,2\n").status_code == 303
        assert _submit(client, "a,b\n1,2\n").status_code == 303
        third = _submit(client, "a,b\n1,2\n")
        assert third.status_code == 503 and third.headers["Retry-After"] == "10"
        assert "2 files are being scored already" in third.get_data(as_text=True)
    finally:
        release.set()


def test_a_wide_file_is_read_in_chunks_bounded_by_bytes_and_scored_whole() -> None:
    """Issue 13 item 6: 30,000 unnamed columns (Excel's formatted empty cells) made 1,000-row
    chunks of 30 million cells; a chunk now also ends once its cells cost ``chunk_bytes``."""
    tail = "," * 30_000
    lines = "".join(f"r{i},{2000 + i},1{tail}\r\n" for i in range(40))  # clear of 11, 13 …
    text = "id,a,b" + tail + "\r\n" + lines
    rows = Dialect().reader(io.StringIO(text, newline=""))
    next(rows)
    chunks = list(csv_scoring.chunks(rows, 1000, 1 << 20))  # a row costs about 270 KB
    assert [len(c) for c in chunks] == [4] * 10
    assert [line for chunk in chunks for line, _ in chunk] == list(range(2, 42))
    client = jobs_client()
    status = _finished(client, _paste(client, text))
    assert status["state"] == "done" and status["scored_rows"] == 40, status
    with client.get(f"/jobs/{status['id']}/result.csv") as response:
        scored = response.get_data().decode("utf-8-sig").splitlines()
    assert scored[0] == "id,a,b" + tail + ",prediction,error,request id"
    assert scored[8] == "r7,2007,1" + tail + f",2008.0,,{status['request_id']}-9"


def test_the_file_is_read_once_and_progress_follows_the_bytes_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14: no first pass counting the rows; the page's percentage is the share of the
    file's bytes read, and the row count is known once the file is read to its end."""
    client = jobs_client()
    manager = client.application.extensions["winserve.scoring.jobs"]
    # rows per chunk: many steps of progress
    monkeypatch.setattr(manager, "bounds", replace(manager.bounds, chunk_rows=200))
    opened: list[str] = []
    real_open = Dialect.open

    def counting_open(self: Dialect, path: Any) -> Any:
        opened.append(path.name)
        return real_open(self, path)

    monkeypatch.setattr(Dialect, "open", counting_open)
    seen: list[tuple[int, int]] = []
    real_write = ScoredCopy.write

    def watched(copy: ScoredCopy, pending: Any) -> None:  # as each chunk is written
        seen.append((copy.job.percent, copy.job.total_rows))
        real_write(copy, pending)

    monkeypatch.setattr(ScoredCopy, "write", watched)
    lines = ["a,b"] + [f"{2000 + i},1" for i in range(5000)]  # 40 KB, clear of 11, 13 …
    status = _finished(client, _submit(client, "\n".join(lines) + "\n"))
    assert status["state"] == "done" and status["percent"] == 100
    assert status["total_rows"] == status["done_rows"] == status["scored_rows"] == 5000
    assert opened == ["input.csv"]  # read once (a comma-separated file is sniffed from line 1)
    percents = [percent for percent, _ in seen]
    assert len(seen) == 25 and percents == sorted(percents), percents
    assert percents[0] == 0 and 0 < percents[-1] < 100 and len(set(percents)) >= 4, percents
    assert {total for _, total in seen} == {0}  # not counted before it is scored


def test_a_file_past_max_csv_rows_is_refused_with_its_row_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found out while reading (chunks of 100 here): the message still says how many rows."""
    client = jobs_client(max_csv_rows=200)
    manager = client.application.extensions["winserve.scoring.jobs"]
    monkeypatch.setattr(manager, "bounds", replace(manager.bounds, chunk_rows=200))
    lines = ["a,b"] + [f"{2000 + i},1" for i in range(250)] + ["", "1,1"]
    status = _finished(client, _submit(client, "\n".join(lines) + "\n"))
    assert status["state"] == "failed"
    assert (
        status["error"]
        == "the file has 251 rows, more than the 200 allowed (setting: max_csv_rows)"
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a" * 200_000 + "\n1\n", "the first line is longer than 128 KB; is this a CSV file?"),
        ("a,b\n1,2\n" + "3" * (3 << 20) + "\n", "line 3 is longer than 2 MB"),
        ('a,b\n1,"' + "x" * 200_000 + '"\n', "line 2 has a value longer than 128 KB"),
    ],
)
def test_lines_too_long_for_a_csv_file_are_refused_with_a_sentence(text: str, needle: str) -> None:
    client = jobs_client()
    status = _finished(client, _paste(client, text))
    assert status["state"] == "failed" and needle in status["error"], status
    assert "field larger than field limit" not in status["error"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            'a,b\n1,2\n3,"4\n5,6\n7,8\n',
            "line 3 opens a quote that is never closed: lines 3 to 5, the rest of the file, "
            "would be one value",
        ),
        ('a,b\n1,2\n3,"4', "line 3 opens a quote that is never closed (the file ends inside it)"),
        ('a,"b\n1,2\n', "line 1 opens a quote that is never closed"),
    ],
)
def test_a_quote_never_closed_fails_the_job_naming_its_line(text: str, needle: str) -> None:
    """csv (not strict) closed such a quote at the end of the file: the rest of the file
    became one cell of one row, and the job was "done" with rows silently gone (pandas'
    read_csv refuses the file)."""
    client = jobs_client()
    status = _finished(client, _paste(client, text))
    assert status["state"] == "failed" and needle in status["error"], status


def test_quoted_values_over_several_lines_are_still_read() -> None:
    client = jobs_client()
    status = _finished(client, _paste(client, 'a,b,note\n1,2,"two\nlines"\n3,4,"say ""hi"""\n'))
    assert status["state"] == "done" and status["total_rows"] == 2, status


def _files(client: FlaskClient, status: dict[str, Any]) -> list[str]:
    job = client.application.extensions["winserve.scoring.jobs"].get(status["id"])
    return sorted(p.name for p in job.directory.iterdir())


def test_an_upload_is_deleted_as_soon_as_its_job_ends() -> None:
    """Issue 13 item 7: a failed job kept its input for keep_results_minutes."""
    client = jobs_client()
    done = _finished(client, _submit(client, "a,b\n2001,1\n"))
    assert done["state"] == "done" and _files(client, done) == ["scored.csv"]
    failed = _finished(client, _submit(client, "x,y\n1,2\n"))
    assert failed["state"] == "failed" and _files(client, failed) == []


def test_the_scoring_folder_is_capped_by_max_jobs_mb() -> None:
    client = jobs_client(max_jobs_mb=0.1)  # 102 KB

    def paste(text: str) -> Any:  # a short request id: each scored row carries it (issue 27)
        data = {"csrf_token": _token(client), "rows": text}
        return client.post("/jobs", data=data, headers={"X-Request-Id": "t"})

    rows = "a,b\n" + "".join(f"{2000 + i},1\n" for i in range(3000))  # 21 KB; scored 69 KB
    first = _finished(client, paste(rows))
    assert first["state"] == "done", first
    # 69 KB kept + this upload + its result passes the cap while it is scored: the job fails
    second = _finished(client, paste(rows))
    assert second["state"] == "failed" and "(setting: max_jobs_mb)" in second["error"]
    assert _files(client, second) == []
    bigger = rows + "".join(f"{6000 + i},1\n" for i in range(3000))  # 42 KB: cannot be kept
    refused = paste(bigger)
    assert refused.status_code == 503 and refused.mimetype == "text/html"
    text = refused.get_data(as_text=True)
    assert "the folder for CSV scoring is full" in text and "max_jobs_mb" in text
    assert "keep_results_minutes" in text
    small = _finished(client, _paste(client, "a,b\n2001,1\n"))  # and a small file still fits
    assert small["state"] == "done"
    with client.get(f"/jobs/{first['id']}/result.csv") as kept:
        assert kept.status_code == 200


def test_labels_that_look_like_formulas_are_written_as_text_and_numbers_as_numbers() -> None:
    """Issue 13 item 8: what winserve writes never runs as a formula in Excel; the user's own
    cells are carried through as the user wrote them."""
    client = jobs_client("tests.csv_models:formula")
    text = "note,a,b\n=1+1,0,1\n-5,1,1\n@x,2,1\nplain,3,1\nplain,4,1\nplain,5,1\nbad,99,1\n"
    status = _finished(client, _submit(client, text))
    assert status["state"] == "done" and status["scored_rows"] == 6, status
    with client.get(f"/jobs/{status['id']}/result.csv") as response:
        rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0][3] == "prediction" and rows[0][4] == f"probability {FORMULA_LABELS[0]}"
    assert [r[0] for r in rows[1:]] == ["=1+1", "-5", "@x", "plain", "plain", "plain", "bad"]
    assert [r[3] for r in rows[1:7]] == [
        "'" + FORMULA_LABELS[0],
        "'-2+3",
        "'@SUM(A1)",
        "+1",
        "-3",
        "ok",
    ]
    assert rows[1][4:10] == ["1.0", "0.0", "0.0", "0.0", "0.0", "0.0"]
    assert rows[7][3] == "" and rows[7][-2].startswith("the model rejected the input")
    assert rows[0][-1] == "request id" and rows[7][-1] == f"{status['request_id']}-8"
    assert FORMULA_ERROR in rows[7][-2]


def test_a_negative_prediction_stays_a_number() -> None:
    client = jobs_client()
    status = _finished(client, _submit(client, "a;b\n-3;0\n-0,5;-1\n"))
    scored = _scored(client, status, ";")
    assert [r["prediction"] for r in scored] == ["-3,0", "-1,5"]


def test_a_multi_output_model_gets_one_column_per_output() -> None:
    client = jobs_client("tests.csv_models:two_outputs")
    status = _finished(client, _submit(client, "a;b\n1,5;1\n2;x\n"))
    assert status["state"] == "done" and status["scored_rows"] == 1, status
    with client.get(f"/jobs/{status['id']}/result.csv") as response:
        lines = response.get_data().decode("utf-8-sig").splitlines()
    assert lines[0] == "a;b;prediction 1;prediction 2;error;request id"
    assert lines[1] == f"1,5;1;2,5;0,5;;{status['request_id']}-2"
    assert lines[2].startswith("2;x;;;column 'b': expected a number")


def test_a_file_larger_than_max_jobs_mb_alone_is_refused_as_too_large() -> None:
    client = jobs_client(max_jobs_mb=0.01)  # 10 KB
    refused = _paste(client, "a,b\n" + "2001,1\n" * 3000)
    assert refused.status_code == 413
    assert "that CSV scoring may use on disk (setting: max_jobs_mb)" in refused.get_data(
        as_text=True
    )
    assert _finished(client, _paste(client, "a,b\n2001,1\n"))["state"] == "done"

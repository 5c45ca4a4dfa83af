"""Scoring jobs for programs (issue 27): ``POST /jobs`` and ``POST /models/<name>/jobs`` without
the page's form value, for a caller that carries a header no HTML form can send (the token's
``Authorization: Bearer``, or ``X-Winserve-Client`` when no token is set), answered in JSON:
``202`` with the job's id, status and result URLs and a ``Location``. A form from another site
is still refused, in real Chromium too, and a script of another site cannot send the header
(its CORS preflight is never granted). Each scored row carries a ``request id``: the upload's
``X-Request-Id`` and the row's line."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests
from flask.testing import FlaskClient

from tests import chromium
from tests.helpers import (
    csrf_token,
    job_ended,
    jobs_client,
    page_on_another_port,
    running_server,
)
from tests.model_files import constant_model

ROWS = b"a,b\n1,2\n\n3,x\n4,5\n"  # line 3 blank, line 4 refused
PROGRAM = {"X-Winserve-Client": "1"}
TOKEN = "jobs-api-token-1"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _upload(client: FlaskClient, headers: dict[str, str], path: str = "/jobs") -> Any:
    data = {"file": (io.BytesIO(ROWS), "rows.csv")}
    return client.post(path, data=data, content_type="multipart/form-data", headers=headers)


def _done(client: FlaskClient, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    return job_ended(client, status_url, 30, headers)


def _done_or(
    client: FlaskClient, status_url: str, headers: dict[str, str], state: str
) -> dict[str, Any]:
    """The job's status once it is ``state`` (or has ended otherwise)."""
    result = job_ended(client, status_url, 30, headers, ("done", "failed", state))
    assert result["state"] == state, result
    return result


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_a_program_without_a_token_sends_the_client_header_and_gets_json() -> None:
    client = jobs_client()
    answer = _upload(client, {**PROGRAM, "X-Request-Id": "batch-7"})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    links = answer.json
    assert set(links) >= {"id", "status_url", "result_url"}
    assert answer.headers["Location"] == links["status_url"]
    assert links["status_url"] == f"http://localhost/jobs/{links['id']}/status"
    assert links["result_url"] == f"http://localhost/jobs/{links['id']}/result.csv"
    status = _done(client, links["status_url"], PROGRAM)
    assert status["state"] == "done" and status["request_id"] == "batch-7", status
    assert (status["scored_rows"], status["problem_count"]) == (2, 1)
    with client.get(links["result_url"], headers=PROGRAM) as result:
        assert result.status_code == 200 and result.mimetype == "text/csv"
        rows = _rows(result.get_data())
    assert rows[0] == ["a", "b", "prediction", "error", "request id"]
    # each row's id: the upload's and its line (the empty line 3 stays empty)
    assert [r[-1] if r else None for r in rows[1:]] == ["batch-7-2", None, "batch-7-4", "batch-7-5"]
    assert rows[1][2] == "3.0" and "expected a number" in rows[3][3]


def test_a_request_id_that_would_start_a_formula_is_written_as_text() -> None:
    client = jobs_client()
    answer = _upload(client, {**PROGRAM, "X-Request-Id": "-1"})  # "-1-2" is no number
    status = _done(client, answer.json["status_url"], PROGRAM)
    with client.get(answer.json["result_url"]) as result:
        rows = _rows(result.get_data())
    assert status["request_id"] == "-1" and rows[1][-1] == "'-1-2"


def test_without_the_header_an_upload_still_needs_the_form_value() -> None:
    client = jobs_client()
    as_json = _upload(client, {"Accept": "application/json"})
    assert as_json.status_code == 403 and as_json.json["error"]["code"] == "csrf_failed"
    # a program that forgot the header is told which one (curl -F file=@rows.csv)
    assert "'X-Winserve-Client: 1'" in as_json.json["error"]["message"]
    as_page = _upload(client, {})
    assert as_page.status_code == 403 and as_page.mimetype == "text/html"
    assert "X-Winserve-Client: 1" in as_page.get_data(as_text=True)
    client.get("/")  # a browser that had the page: its form value is missing or stale
    stale = _upload(client, {"Accept": "application/json"})
    assert stale.status_code == 403
    assert "did not come from this page" in stale.json["error"]["message"]


def test_the_client_header_from_another_sites_page_is_refused() -> None:
    client = jobs_client()
    answer = _upload(client, {**PROGRAM, "Origin": "http://evil.example"})
    assert answer.status_code == 403 and answer.json["error"]["code"] == "csrf_failed"
    assert "another site" in answer.json["error"]["message"]


def test_a_programs_mistakes_are_answered_in_json() -> None:
    client = jobs_client()
    empty = client.post("/jobs", data={"rows": " "}, headers=PROGRAM)
    assert empty.status_code == 400 and empty.mimetype == "application/json"
    assert "paste rows with a header line" in empty.json["error"]["message"]
    unknown = client.get("/jobs/" + "0" * 32 + "/result.csv", headers=PROGRAM)
    assert unknown.status_code == 404 and unknown.mimetype == "application/json"


def test_with_a_token_the_bearer_header_stands_for_the_form_value() -> None:
    client = jobs_client(token=TOKEN)
    answer = _upload(client, BEARER)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    status = _done(client, answer.json["status_url"], BEARER)
    assert status["state"] == "done", status
    with client.get(answer.json["result_url"], headers=BEARER) as result:
        assert result.status_code == 200 and _rows(result.get_data())[0][-1] == "request id"
    wrong = _upload(client, {"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401
    # with a token set, the client header alone is no token
    assert _upload(client, PROGRAM).status_code == 401
    assert client.get(answer.json["result_url"]).status_code in (303, 401)


def _two_tables() -> bytes:
    """A workbook of three sheets: notes, and two tables that both name the inputs."""
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    book.active.append(["to score"])
    for name, first in (("March", 1), ("April <b>", 10)):
        sheet = book.create_sheet(name)
        sheet.append(["a", "b"])
        sheet.append([first, 2])
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def test_a_workbook_with_several_tables_asks_which_sheet_on_the_page() -> None:
    """Issue 27: a plain form (no script) lists the sheets; the one chosen is scored."""
    client = jobs_client()
    token = csrf_token(client.get("/").get_data(as_text=True))
    data = {"csrf_token": token, "file": (io.BytesIO(_two_tables()), "months.xlsx")}
    sent = client.post("/jobs", data=data, content_type="multipart/form-data")
    assert sent.status_code == 303
    job = sent.headers["Location"]
    status = _done_or(client, f"{job}/status", {}, "choose")
    assert status["sheets"] == ["March", "April <b>"], status
    assert "2 sheets name the model's inputs" in status["error"]
    page = client.get(job).get_data(as_text=True)
    form = page.split('<form id="choose-sheet"', 1)[1].split("</form>", 1)[0]
    assert f'action="{job}/sheet"' in form and 'name="csrf_token"' in form
    assert re.findall(r"<option>(.*?)</option>", form) == ["March", "April &lt;b&gt;"]
    wrong = client.post(f"{job}/sheet", data={"csrf_token": token, "sheet": "May"})
    assert wrong.status_code == 400 and "choose one of the sheets 'March'" in html.unescape(
        wrong.text
    )
    forged = client.post(f"{job}/sheet", data={"csrf_token": "0" * 64, "sheet": "March"})
    assert forged.status_code == 403
    chosen = client.post(f"{job}/sheet", data={"csrf_token": token, "sheet": "April <b>"})
    assert chosen.status_code == 303 and chosen.headers["Location"] == job
    status = _done(client, f"{job}/status", {})
    assert status["state"] == "done" and status["scored_rows"] == 1, status
    with client.get(f"{job}/result.xlsx") as result:
        book = openpyxl.load_workbook(io.BytesIO(result.get_data()))
    scored = [[c.value for c in row] for row in book["April <b>"].iter_rows()]
    assert scored[0] == ["a", "b", "prediction", "error", "request id"]
    assert scored[1][:4] == [10, 2, 12, None]
    again = client.post(f"{job}/sheet", data={"csrf_token": token, "sheet": "March"})
    assert again.status_code == 400 and "not waiting for a sheet" in again.text


def test_a_program_chooses_the_sheet_from_the_status() -> None:
    client = jobs_client()
    data = {"file": (io.BytesIO(_two_tables()), "months.xlsx")}
    sent = client.post("/jobs", data=data, content_type="multipart/form-data", headers=PROGRAM)
    links = sent.json
    assert sent.status_code == 202 and links["result_url"].endswith("/result.xlsx")
    status = _done_or(client, links["status_url"], PROGRAM, "choose")
    path = links["status_url"].removesuffix("/status")
    chosen = client.post(f"{path}/sheet", data={"sheet": status["sheets"][0]}, headers=PROGRAM)
    assert chosen.status_code == 202 and chosen.json["status_url"] == links["status_url"]
    assert _done(client, links["status_url"], PROGRAM)["scored_rows"] == 1
    unmarked = client.post(f"{path}/sheet", data={"sheet": "March"})  # no header, no form value
    assert unmarked.status_code == 403


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(180)
def test_a_folder_models_jobs_for_a_program_with_a_token(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "plain.joblib", 3.0)
    with running_server([str(folder), "--token", TOKEN], cwd=tmp_path) as server:
        answer = requests.post(
            f"{server.url}/models/plain/jobs",
            files={"file": ("rows.csv", b"a,b\n1,2\n2,3\n", "text/csv")},
            headers={**BEARER, "X-Request-Id": "nightly"},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        links = answer.json()
        assert links["status_url"].startswith(f"{server.url}/models/plain/jobs/")
        assert answer.headers["Location"] == links["status_url"]
        assert job_ended(requests, links["status_url"], 60, BEARER)["state"] == "done"
        result = requests.get(links["result_url"], headers=BEARER, timeout=10)
        assert result.status_code == 200
        assert _rows(result.content) == [
            ["a", "b", "prediction", "error", "request id"],
            ["1", "2", "3.0", "", "nightly-2"],
            ["2", "3", "3.0", "", "nightly-3"],
        ]


def _examples(page: str, language: str) -> str:
    """The jobs example in ``language`` as the /api page shows it (its text, unescaped)."""
    section = page.split('id="jobs-help"', 1)[1].split("</section>", 1)[0]
    found = re.search(rf"<h3>{language}</h3>\s*<pre><code>(.*?)</code></pre>", section, re.S)
    assert found, f"no {language} example for jobs on /api"
    return html.unescape(found.group(1))


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(180)
@pytest.mark.parametrize("token", ["", TOKEN])
def test_the_api_pages_jobs_examples_score_a_file(tmp_path: Path, token: str) -> None:
    """The curl and Python examples for jobs, pasted as they are, against a real server."""
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "plain.joblib", 3.0)
    work = tmp_path / "work"
    work.mkdir()
    (work / "rows.csv").write_bytes(b"a,b\n1,2\n2,3\n")
    env = {**os.environ, "WINSERVE_TOKEN": token}
    args = [str(folder), *(["--token", token] if token else [])]
    with running_server(args, cwd=tmp_path) as server:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        page = requests.get(f"{server.url}/models/plain/api", headers=headers, timeout=10).text
        curl, python = _examples(page, "curl"), _examples(page, "Python")
        assert f"{server.url}/models/plain/jobs" in curl
        for command in (["bash", "-c", curl], [sys.executable, "-c", python]):
            (work / "rows-scored.csv").unlink(missing_ok=True)
            done = subprocess.run(command, cwd=work, env=env, timeout=120, capture_output=True)
            assert done.returncode == 0, done.stderr
            rows = _rows((work / "rows-scored.csv").read_bytes())
            assert [r[:3] for r in rows] == [
                ["a", "b", "prediction"],
                ["1", "2", "3.0"],
                ["2", "3", "3.0"],
            ]
            assert rows[0][-1] == "request id" and rows[2][-1].endswith("-3")


# -- another site, in real Chromium -----------------------------------------------------------

browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page

OTHER_SITE = """<!doctype html><title>another page</title>
<form id="forged" method="post" action="%(jobs)s" enctype="multipart/form-data">
<input name="rows" value="a,b&#10;1,2"><input name="X-Winserve-Client" value="1"></form>
<script>
const data = new FormData(); data.append("rows", "a,b\\n1,2");
fetch(%(jobs)r, {method: "POST", headers: {"X-Winserve-Client": "1"}, body: data})
  .then(() => { document.title = "sent"; }, () => { document.title = "failed"; });
</script>"""


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("jobs-api-browser")
    folder = root / "models"
    folder.mkdir()
    constant_model(folder / "plain.joblib", 3.0)
    jobs = root / "jobs"
    with running_server([str(folder), "--jobs-path", str(jobs)], cwd=root) as server:
        yield server.url, jobs


@pytest.fixture
def other_site(open_server: tuple[str, Path]) -> Iterator[str]:
    body = (OTHER_SITE % {"jobs": open_server[0] + "/models/plain/jobs"}).encode()
    with page_on_another_port(body) as url:
        yield url


def _job_folders(jobs: Path) -> list[Path]:
    return [p for p in jobs.glob("*/*") if p.is_dir()] if jobs.exists() else []


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.timeout(240)
def test_another_sites_form_and_script_cannot_start_a_job(
    page: Any, open_server: tuple[str, Path], other_site: str
) -> None:
    url, jobs = open_server
    page.goto(url + "/models/plain/")  # the browser has the page's CSRF cookie
    page.goto(other_site)
    # the script's header needs a CORS preflight, which winserve never grants: not sent
    page.wait_for_function("document.title !== 'another page'", timeout=20_000)
    assert page.title() == "failed"
    # the form posts (with the cookie, and a field named like the header): refused
    with page.expect_navigation(timeout=20_000):
        page.evaluate("document.getElementById('forged').submit()")
    assert "sent from another site" in page.content()
    assert _job_folders(jobs) == []
    # a program (no browser) with the header may
    answer = requests.post(
        url + "/models/plain/jobs", data={"rows": "a,b\n1,2"}, headers=PROGRAM, timeout=30
    )
    assert answer.status_code == 202 and len(_job_folders(jobs)) == 1

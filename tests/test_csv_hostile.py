"""Hostile CSV files against a real server (issue 13 items 6, 7, 8): a file 30,000 columns
wide, a first line that is no CSV header, failed jobs and a full scoring folder, labels that
are spreadsheet formulas. Each answers with a clear status and message, and the server goes on
answering normal requests."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.csv_models import FORMULA_LABELS
from tests.helpers import (
    ServerProcess,
    csrf_token,
    job_ended,
    running_server,
    server_env,
)
from winserve.scratch import MARKER

pytestmark = [pytest.mark.server, pytest.mark.spawn]


class Page:
    """A colleague's browser on the page: a session with the form token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def upload(self, data: bytes) -> requests.Response:
        page = self.session.get(self.url + "/", timeout=30).text
        return self.session.post(
            self.url + "/jobs",
            data={"csrf_token": csrf_token(page)},
            files={"file": ("rows.csv", data, "text/csv")},
            # a short request id: each scored row carries it, and the folder cap's figures
            # below count the scored file's bytes (issue 27)
            headers={"Origin": self.url, "X-Request-Id": "h"},
            allow_redirects=False,
            timeout=60,
        )

    def score(self, data: bytes) -> dict[str, Any]:
        answer = self.upload(data)
        assert answer.status_code == 303, answer.text
        return job_ended(self.session, f"{self.url}{answer.headers['Location']}/status")

    def result(self, status: dict[str, Any]) -> list[list[str]]:
        answer = self.session.get(f"{self.url}/jobs/{status['id']}/result.csv", timeout=30)
        assert answer.status_code == 200
        return list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))

    def still_answers(self) -> None:
        answer = requests.post(self.url + "/predict", json=[{"a": 2, "b": 1}], timeout=30)
        assert answer.status_code == 200 and answer.json()["predictions"] == ["@SUM(A1)"]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@contextmanager
def _server(tmp_path: Path, cache: Path, *args: str) -> Iterator[ServerProcess]:
    env = server_env(XDG_CACHE_HOME=str(cache))
    model = ["--factory", "tests.csv_models:formula", *args]
    with running_server(model, cwd=tmp_path, env=env) as server:
        yield server


def _rows(count: int) -> bytes:
    return ("a,b\r\n" + "2,1\r\n" * count).encode()


def test_a_wide_file_is_scored_and_a_first_line_that_is_no_header_refused(
    tmp_path: Path, cache: Path
) -> None:
    with _server(tmp_path, cache) as server:
        page = Page(server.url)
        tail = "," * 30_000  # Excel's formatted empty cells, as unnamed columns
        wide = "a,b" + tail + "\r\n" + "".join(f"{i % 6},1{tail}\r\n" for i in range(30))
        status = page.score(wide.encode())
        assert status["state"] == "done" and status["scored_rows"] == 30, status
        rows = page.result(status)
        assert len(rows) == 31 and all(len(r) == 30_002 + 9 for r in rows)
        not_csv = page.score(b"a" * 200_000 + b"\r\n1\r\n")
        assert not_csv["state"] == "failed"
        assert not_csv["error"].startswith(
            "the first line is longer than 128 KB; is this a CSV file?"
        )
        page.still_answers()
        assert page.score(_rows(3))["state"] == "done"


def test_failed_jobs_keep_nothing_and_a_full_folder_refuses_uploads(
    tmp_path: Path, cache: Path
) -> None:
    with _server(tmp_path, cache, "--max-jobs-mb", "0.3") as server:  # 314 KB
        page = Page(server.url)
        jobs = cache / "winserve" / "jobs"
        failed = page.score(b"x,y\r\n" + b"1,2\r\n" * 20_000)
        assert failed["state"] == "failed" and "the CSV has no columns 'a', 'b'" in failed["error"]
        # its upload went at once (the run folder's .owner marker lives as long as winserve)
        assert [p for p in jobs.rglob("*") if p.is_file() and p.name != MARKER] == []
        kept = page.score(_rows(5000))  # 25 KB; scored about 225 KB, kept for download
        assert kept["state"] == "done", kept
        overfull = page.score(_rows(5000))  # its result would pass the cap while scored
        assert overfull["state"] == "failed" and "(setting: max_jobs_mb)" in overfull["error"]
        refused = page.upload(_rows(33_000))  # 130 KB more cannot fit beside 225 KB
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "60"
        assert refused.headers["Content-Type"].startswith("text/html")
        assert "the folder for CSV scoring is full" in refused.text
        assert "max_jobs_mb" in refused.text and "keep_results_minutes" in refused.text
        files = sorted(p.name for p in jobs.rglob("*") if p.is_file() and p.name != MARKER)
        assert files == ["scored.csv"]  # the one result kept, nothing else
        page.still_answers()
        assert page.score(_rows(3))["state"] == "done"


def test_formulas_written_by_winserve_are_text_and_numbers_stay_numbers(
    tmp_path: Path, cache: Path
) -> None:
    with _server(tmp_path, cache) as server:
        page = Page(server.url)
        text = "note,a,b\r\n=1+1,0,1\r\n-5,1,1\r\n@x,2,1\r\nplain,3,1\r\nplain,4,1\r\nplain,5,1\r\n"
        status = page.score(text.encode())
        assert status["state"] == "done" and status["scored_rows"] == 6, status
        rows = page.result(status)
        assert [r[0] for r in rows[1:]] == ["=1+1", "-5", "@x", "plain", "plain", "plain"]
        assert [r[3] for r in rows[1:]] == [
            "'" + FORMULA_LABELS[0],
            "'-2+3",
            "'@SUM(A1)",
            "+1",
            "-3",
            "ok",
        ]
        assert rows[1][4:10] == ["1.0", "0.0", "0.0", "0.0", "0.0", "0.0"]
        # the JSON API answers the model's labels as they are: only the CSV is for Excel
        answer = requests.post(server.url + "/predict", json=[{"a": 0, "b": 1}], timeout=30)
        assert answer.json()["predictions"] == [FORMULA_LABELS[0]]
        page.still_answers()

"""Scoring a CSV file through a real server's page, as a colleague's browser does."""

from __future__ import annotations

import csv
import io
from typing import Any

import requests

from tests.helpers import csrf_token, job_ended


def page_token(session: requests.Session, page: str) -> str:
    """The form token of the page at ``page``, fetched in ``session``."""
    return csrf_token(session.get(page, timeout=10).text)


def submit(session: requests.Session, page: str, data: bytes) -> str:
    """Upload ``data`` on the model page at ``page`` (ending in ``/``); the job's address."""
    answer = session.post(
        f"{page}jobs",
        data={"csrf_token": page_token(session, page)},
        files={"file": ("rows.csv", data, "text/csv")},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303, answer.text
    location: str = answer.headers["Location"]
    return location


def status(session: requests.Session, url: str, job: str) -> dict[str, Any]:
    found: dict[str, Any] = session.get(f"{url}{job}/status", timeout=10).json()
    return found


def finished(session: requests.Session, url: str, job: str, timeout: float = 60) -> dict[str, Any]:
    return job_ended(session, f"{url}{job}/status", timeout)


def scored(session: requests.Session, url: str, job: str) -> tuple[list[str], list[list[str]]]:
    """The scored file's first line and its rows."""
    text = session.get(f"{url}{job}/result.csv", timeout=10).content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]

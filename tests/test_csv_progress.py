"""A CSV job's status while it runs, on a real server with a model that takes 0.3 s a call:
its ``seconds`` are the time elapsed so far (they were 0.0 until the job ended), and the final
figure once it is done."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests import csv_server
from tests.helpers import running_server, wait_until

pytestmark = [pytest.mark.spawn, pytest.mark.server]


def test_a_running_job_shows_the_seconds_elapsed_so_far(tmp_path: Path) -> None:
    lines = ["a,b"] + [f"{2000 + i},1" for i in range(6000)]  # 6 chunks: 6 calls of 0.3 s
    with running_server(["--factory", "tests.models:steady"], cwd=tmp_path) as server:
        session = requests.Session()
        job = csv_server.submit(session, f"{server.url}/", "\n".join(lines).encode())
        submitted = time.monotonic()

        def running_a_while() -> dict[str, object] | None:
            status = csv_server.status(session, server.url, job)
            assert status["state"] != "done", "the job ended before it was seen running"
            return status if status["state"] == "running" and status["seconds"] > 0.5 else None

        running = wait_until(running_a_while, 30)
        assert 0.5 < running["seconds"] <= time.monotonic() - submitted + 0.5
        later = wait_until(
            lambda: (
                (s := csv_server.status(session, server.url, job))["seconds"] > running["seconds"]
                and s
            ),
            10,
        )
        assert later["state"] in ("running", "done")
        done = csv_server.finished(session, server.url, job)
        assert done["state"] == "done" and done["scored_rows"] == 6000
        assert done["seconds"] >= 1.8  # at least six calls of 0.3 s
        time.sleep(0.3)
        assert csv_server.status(session, server.url, job)["seconds"] == done["seconds"]

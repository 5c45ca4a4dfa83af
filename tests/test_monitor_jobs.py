"""A CSV job in the prediction log (issue 26), through a real server: ``python -m winserve``
serving a folder with its log, a file of 1,000 rows scored as a job (one input shifted, two
rows the model cannot take), then ``monitor.json`` and ``/log.csv`` read back: the job's
summary on the timeline, a sample of 200 of its rows (inputs as numbers) that drift sees, and
the job counted apart from the requests."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import zoo
from tests.helpers import job_ended, running_server, wait_until
from tests.model_files import churn_files

pytestmark = [pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(240)]

TIMEOUT = 30
ROWS = 1000
PROGRAM = {"X-Winserve-Client": "tests", "X-Request-Id": "nightly"}


def test_a_jobs_summary_and_sample_reach_the_log_and_the_monitor(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    churn_files(folder)
    sent = zoo._mixed_frame(ROWS, np.random.default_rng(4))
    sent["spend"] = sent["spend"] + 30.0  # 1.5 standard deviations: shifted
    sent = sent.astype(object)
    sent.loc[[10, 500], "tenure"] = "lots"  # not a number: those two rows are not scored
    log = tmp_path / "log.sqlite"
    with running_server([str(folder), "--log-path", str(log)], cwd=tmp_path) as server:
        url = f"{server.url}/models/churn"
        answer = requests.post(
            f"{url}/jobs",
            files={"file": ("week.csv", sent.to_csv(index=False).encode(), "text/csv")},
            headers=PROGRAM,
            timeout=TIMEOUT,
        )
        assert answer.status_code == 202, answer.text
        ended = job_ended(requests, answer.json()["status_url"], 120)
        assert ended["state"] == "done", ended

        def monitored() -> dict[str, Any]:
            found: dict[str, Any] = requests.get(f"{url}/monitor.json", timeout=TIMEOUT).json()
            return found

        wait_until(lambda: any(e["kind"] == "job" for e in monitored()["events"]), 30)
        found = monitored()
        job = next(e for e in found["events"] if e["kind"] == "job")
        assert job["words"] == "CSV job on version 1"
        assert job["detail"].startswith("week.csv: 1,000 rows, 2 not scored, "), job
        assert found["logged_rows"] == 200  # the job's sample, not its 1,000 rows
        words = {c["name"]: c["words"] for c in found["columns"]}
        assert words["spend"] == "shifted" and words["plan"] == "stable", words
        assert found["activity"]["requests"] == 0  # a job is not a request
        assert sum(p["rows"] for p in found["activity"]["predictions"]) == 200

        exported = requests.get(f"{url}/log.csv", timeout=TIMEOUT)
        lines = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(lines) == 200 and {line["request_id"] for line in lines} == {"nightly"}
        numbers = sorted(int(line["row"]) for line in lines)
        assert len(set(numbers)) == 200 and not {10 + 2, 500 + 2} & set(numbers)
        assert {line["n_rows"] for line in lines} == {str(ROWS)}

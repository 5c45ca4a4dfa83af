"""The monitor page through a real server (issue 26): ``python -m winserve`` on a free port
serving a folder, spawned model hosts, the prediction log's writer and its SQLite file; rows
drawn with one input shifted, then ``/models/<name>/monitor[.json]`` read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import requests

from tests import zoo
from tests.helpers import records, running_server, wait_until
from tests.model_files import churn_files

pytestmark = [pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(240)]

TIMEOUT = 30
ROWS = 1500
BATCH = 100  # the log keeps at most 100 rows of a request (predlog.record.MAX_ROWS_STORED)


def test_a_shifted_input_is_shifted_and_the_others_stable(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    churn_files(folder)  # churn.joblib and churn.reference.csv: 300 rows, seed 11
    bare = zoo.imputer_pipeline()
    joblib.dump(bare.model, folder / "bare.joblib")  # no reference beside it
    sent = zoo._mixed_frame(ROWS, np.random.default_rng(12))
    sent["spend"] = sent["spend"] + 30.0  # 1.5 standard deviations: shifted
    log = tmp_path / "log.sqlite"
    with running_server([str(folder), "--log-path", str(log)], cwd=tmp_path) as server:
        url = f"{server.url}/models/churn"
        for start in range(0, ROWS, BATCH):
            answer = requests.post(
                f"{url}/predict", json=records(sent.iloc[start : start + BATCH]), timeout=TIMEOUT
            )
            assert answer.status_code == 200, answer.text

        def monitored() -> dict[str, Any]:
            answer = requests.get(f"{url}/monitor.json", timeout=TIMEOUT)
            assert answer.status_code == 200, answer.text
            found: dict[str, Any] = answer.json()
            return found

        # the writer commits about every half second, then tells the web process its count
        wait_until(
            lambda: (
                monitored()["logged_rows"] == ROWS
                and monitored()["log_status"]["written"] == ROWS // BATCH
            ),
            30,
        )
        found = monitored()
        assert found["reference"] == {"rows": 300, "source": "churn.reference.csv"}
        psi = {c["name"]: c["psi"] for c in found["columns"]}
        assert set(psi) == {"tenure", "spend", "plan", "region"}
        assert psi["spend"] > 0.25, psi
        assert all(psi[c] < 0.1 for c in ("tenure", "plan", "region")), psi
        words = {c["name"]: c["words"] for c in found["columns"]}
        assert words == {
            "tenure": "stable",
            "spend": "shifted",
            "plan": "stable",
            "region": "stable",
        }
        # the sentence on top (deliberately changed from "1 of 4 inputs have shifted (spend ↑).")
        assert found["summary"].startswith("1 of 4 inputs has drifted since ")
        assert found["summary"].endswith(" UTC: spend ↑.")
        assert found["log_status"] == {"written": ROWS // BATCH, "dropped": 0, "lost": 0}
        spend = next(c for c in found["columns"] if c["name"] == "spend")
        assert spend["direction"] == "up"
        # the missing values are their own bin: ~15 % of each sample
        assert spend["bins"][-1]["bin"] == "missing"
        assert 0.1 < spend["bins"][-1]["reference"] < 0.2
        assert 0.1 < spend["bins"][-1]["logged"] < 0.2

        page = requests.get(f"{url}/monitor", timeout=TIMEOUT)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assert found["summary"] in page.text
        assert f'data-column="spend" data-psi="{psi["spend"]}"' in page.text
        assert "shifted (higher values)" in page.text and "stable" in page.text
        assert f"the log has written {ROWS // BATCH} requests; 0 dropped" in page.text

        # a period before anything was logged: no rows, no PSI
        early = requests.get(
            f"{url}/monitor.json", params={"until": "2020-01-01"}, timeout=TIMEOUT
        ).json()
        assert early["logged_rows"] == 0 and {c["psi"] for c in early["columns"]} == {None}
        bad = requests.get(f"{url}/monitor.json", params={"since": "monday"}, timeout=TIMEOUT)
        assert bad.status_code == 400 and "since='monday'" in bad.text

        # a model without a reference sample: the page says which file to add and how
        page = requests.get(f"{server.url}/models/bare/monitor", timeout=TIMEOUT)
        assert page.status_code == 200
        assert "df.sample(1000).to_csv(&#34;bare.reference.csv&#34;, index=False)" in page.text
        bare_json = requests.get(f"{server.url}/models/bare/monitor.json", timeout=TIMEOUT)
        assert (
            bare_json.json()["columns"] == [] and "bare.reference.csv" in bare_json.json()["hint"]
        )
        # a model not served: 404
        missing = requests.get(f"{server.url}/models/nope/monitor.json", timeout=TIMEOUT)
        assert missing.status_code == 404


def test_the_reference_the_card_names_and_rows_like_it_are_stable(tmp_path: Path) -> None:
    """One model file served alone (``/monitor``, the default model), its reference sample
    elsewhere, named by its card (``reference = "…"``): rows drawn as the reference was
    are stable on every input."""
    churn_files(tmp_path)
    (tmp_path / "samples").mkdir()
    (tmp_path / "churn.reference.csv").rename(tmp_path / "samples" / "churn rows.csv")
    (tmp_path / "churn.toml").write_text('reference = "samples/churn rows.csv"\n', "utf-8")
    sent = zoo._mixed_frame(ROWS, np.random.default_rng(13))
    log = tmp_path / "log.sqlite"
    with running_server(
        [str(tmp_path / "churn.joblib"), "--log-path", str(log)], cwd=tmp_path
    ) as server:
        for start in range(0, ROWS, BATCH):
            answer = requests.post(
                f"{server.url}/predict",
                json=records(sent.iloc[start : start + BATCH]),
                timeout=TIMEOUT,
            )
            assert answer.status_code == 200, answer.text

        def monitored() -> dict[str, Any]:
            found: dict[str, Any] = requests.get(
                f"{server.url}/monitor.json", timeout=TIMEOUT
            ).json()
            return found

        wait_until(lambda: monitored()["logged_rows"] == ROWS, 30)
        found = monitored()
        assert found["reference"] == {"rows": 300, "source": "churn rows.csv"}
        assert {c["name"]: c["words"] for c in found["columns"]} == dict.fromkeys(
            ("tenure", "spend", "plan", "region"), "stable"
        ), found["columns"]
        assert found["summary"].startswith("No input has drifted since "), found["summary"]
        page = requests.get(f"{server.url}/monitor", timeout=TIMEOUT)
        assert page.status_code == 200 and found["summary"] in page.text

"""Explanations and what-if curves through a real server (issue 25): waitress, spawned model
hosts, a pipeline with categories and missing values and its ``churn.reference.csv``."""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from tests import zoo
from tests.helpers import check_explanations, records, running_server, wait_until
from tests.model_files import churn_files

pytestmark = [pytest.mark.server, pytest.mark.spawn, pytest.mark.timeout(240)]

WATCH = 0.5


def test_predict_explains_each_row_and_whatif_sweeps_the_reference(tmp_path: Path) -> None:
    case = churn_files(tmp_path)
    rows = case.rows.head(3)
    with running_server([str(tmp_path / "churn.joblib")], cwd=tmp_path) as server:
        url = server.url
        described = requests.get(f"{url}/model", timeout=30).json()
        assert described["reference"] == {"rows": 300, "source": "churn.reference.csv"}

        plain = requests.post(f"{url}/predict", json=records(rows), timeout=30)
        assert plain.status_code == 200 and "explanations" not in plain.json()
        answer = requests.post(f"{url}/predict?explain=true", json=records(rows), timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == plain.json()["predictions"]
        check_explanations(case.model, rows, body["explanations"])

        row = rows.head(1)
        swept = requests.post(
            f"{url}/whatif", json={"row": records(row)[0], "columns": ["spend", "plan"]}, timeout=60
        )
        assert swept.status_code == 200, swept.text
        curves = swept.json()["curves"]
        assert [c["column"] for c in curves] == ["spend", "plan"]
        for curve in curves:
            frame = pd.concat([row] * len(curve["values"]), ignore_index=True)
            frame[curve["column"]] = curve["values"]
            assert curve["predictions"] == case.model.predict(frame).tolist()

        unknown = requests.post(
            f"{url}/whatif", json={"row": records(row)[0], "columns": ["spnd"]}, timeout=30
        )
        assert unknown.status_code == 400
        assert "unknown column 'spnd'" in unknown.json()["error"]["message"]
        two = requests.post(f"{url}/whatif", json={"row": records(rows.head(2))}, timeout=30)
        assert two.status_code == 400 and "one row" in two.json()["error"]["message"]
        many = requests.post(f"{url}/predict?explain=true", json=records(case.rows), timeout=30)
        assert many.status_code == 400
        assert "24 rows asked to be explained; at most 10" in many.json()["error"]["message"]


def test_no_reference_is_a_clear_409_and_a_swapped_model_explains_as_the_new_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    case = churn_files(folder)
    bare = zoo.imputer_pipeline()
    joblib.dump(bare.model, folder / "bare.joblib")  # no reference beside it
    row = records(case.rows.head(1))
    with running_server([str(folder), "--watch-seconds", str(WATCH)], cwd=tmp_path) as server:
        url = server.url
        refused = requests.post(f"{url}/models/bare/predict?explain=true", json=row, timeout=30)
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]["message"]
        assert "bare.reference.csv" in message
        assert 'df.sample(1000).to_csv("bare.reference.csv", index=False)' in message
        assert requests.post(f"{url}/models/bare/predict", json=row, timeout=30).ok
        assert requests.post(f"{url}/models/bare/whatif", json=row[0], timeout=30).status_code == (
            409
        )
        assert requests.get(f"{url}/models/bare", timeout=30).json()["reference"] is None

        first = requests.post(f"{url}/models/churn/predict?explain=true", json=row, timeout=60)
        assert first.status_code == 200, first.text
        check_explanations(case.model, case.rows.head(1), first.json()["explanations"])

        # a retrained model (other labels: other probabilities) replaces the file
        from sklearn.base import clone

        frame = zoo._mixed_frame(400, np.random.default_rng(99))
        labels = np.where(frame["region"].isin(["north", "east"]), "leaves", "stays")
        retrained = clone(case.model).fit(frame, labels)
        joblib.dump(retrained, tmp_path / "churn.tmp")
        os.replace(tmp_path / "churn.tmp", folder / "churn.joblib")
        wait_until(
            lambda: requests.get(f"{url}/models/churn", timeout=30).json()["version"] == 2,
            timeout=60,
        )
        second = requests.post(f"{url}/models/churn/predict?explain=true", json=row, timeout=60)
        assert second.status_code == 200, second.text
        check_explanations(retrained, case.rows.head(1), second.json()["explanations"])
        assert second.json()["explanations"] != first.json()["explanations"]


def test_check_reports_the_reference_sample(tmp_path: Path) -> None:
    """``winserve check`` says in one line whether explanations have a reference, and what
    file to add when they have none."""
    import subprocess
    import sys

    from tests.helpers import server_env

    churn_files(tmp_path)
    joblib.dump(zoo.imputer_pipeline().model, tmp_path / "bare.joblib")
    (tmp_path / "broken.reference.csv").write_text("tenure,spend\n1,2\n", encoding="utf-8")
    joblib.dump(zoo.imputer_pipeline().model, tmp_path / "broken.joblib")

    def reference_line(model: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "winserve", "check", str(tmp_path / model)],
            cwd=tmp_path,
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return next(line for line in result.stdout.splitlines() if "reference" in line.split()[0])

    assert reference_line("churn.joblib").endswith(
        "churn.reference.csv, 300 rows (explanations and what-if curves on)"
    )
    bare = reference_line("bare.joblib")
    assert "none" in bare and 'df.sample(1000).to_csv("bare.reference.csv", index=False)' in bare
    broken = reference_line("broken.joblib")
    assert "NOT used: broken.reference.csv cannot be used: it has no column 'plan'" in broken
    # reference = "…" in the model card: a file elsewhere, from the card's folder
    (tmp_path / "samples").mkdir()
    (tmp_path / "churn.reference.csv").rename(tmp_path / "samples" / "churn rows.csv")
    (tmp_path / "churn.toml").write_text('reference = "samples/churn rows.csv"\n', "utf-8")
    named = reference_line("churn.joblib")
    assert named.endswith("churn rows.csv, 300 rows (explanations and what-if curves on)")

"""A scored CSV has the notebook's numbers to the last digit (issue 29): a job's chunks reach
the model laid out as ``pd.read_csv`` holds a file (column-major, ``rows.COLUMN_MAJOR``) and
start where the notebook's whole matrix has a row of the same place in BLAS's blocks
(``chunk_size.ALIGN``). Row-major chunks gave a LinearRegression other last digits than
``model.predict(pd.read_csv(f))`` on about 60 % of a 12-column file's rows.

Through a real spawned server (the matrix crosses the pipe, the host copies it) and with the
model in process (``LocalBackend``: no pipe)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from tests.helpers import csrf_token, job_ended, jobs_client, page_job, running_server
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(180)

COLUMNS = [f"x{i}" for i in range(12)]
ROWS = (
    4_000  # the upload under 500 kB: werkzeug's test client spools more to a file it never closes
)


def _data() -> tuple[pd.DataFrame, bytes]:
    rng = np.random.default_rng(29)
    scale = rng.uniform(0.1, 100, len(COLUMNS))
    # four decimals: read_csv's parser and winserve's read each cell to the same float
    frame = pd.DataFrame(
        np.round(rng.normal(size=(ROWS, len(COLUMNS))) * scale, 4), columns=COLUMNS
    )
    return frame, frame.to_csv(index=False).encode()


def _models(frame: pd.DataFrame) -> dict[str, Any]:
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    rng = np.random.default_rng(7)
    target = frame.to_numpy() @ rng.normal(size=len(COLUMNS))
    return {
        "linear regression": LinearRegression().fit(frame, target),
        "ridge": Ridge().fit(frame, target),
        "binary logistic regression": LogisticRegression(max_iter=2_000).fit(
            frame, (target > np.median(target)).astype(int)
        ),
    }


def _notebook(model: Any, data: bytes) -> list[list[float]]:
    """What the data scientist's notebook computes for the file, each row's numbers."""
    read = pd.read_csv(io.BytesIO(data))
    answers = [np.asarray(model.predict(read), dtype=float)[:, None]]
    if hasattr(model, "predict_proba"):
        answers.append(model.predict_proba(read))
    return np.hstack(answers).tolist()


def _scored(text: str) -> list[list[float]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    shares = [name for name in rows[0] if name.startswith("probability ")]
    return [[float(row["prediction"]), *(float(row[s]) for s in shares)] for row in rows]


def _differing(got: list[list[float]], want: list[list[float]]) -> list[int]:
    assert len(got) == len(want)
    return [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, tuple[Path, Any]]]:
    frame, data = _data()
    folder = tmp_path_factory.mktemp("digits")
    saved = {}
    for name, model in _models(frame).items():
        path = folder / f"{name}.joblib"
        joblib.dump(model, path)
        saved[name] = (path, model)
    return data, saved


@pytest.mark.parametrize("name", ["linear regression", "ridge", "binary logistic regression"])
def test_a_job_in_process_has_the_notebooks_digits(
    files: tuple[bytes, dict[str, tuple[Path, Any]]], name: str
) -> None:
    data, saved = files
    path, model = saved[name]
    client = jobs_client(ModelSpec(path=str(path)))
    upload = {
        "csrf_token": csrf_token(client.get("/").get_data(as_text=True)),
        "file": (io.BytesIO(data), "rows.csv"),
    }
    response = client.post("/jobs", data=upload, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    job = response.headers["Location"]
    status = job_ended(client, f"{job}/status", 60)
    assert status["state"] == "done" and status["problem_count"] == 0, status
    with client.get(f"{job}/result.csv") as result:
        got = _scored(result.get_data().decode("utf-8-sig"))
    differing = _differing(got, _notebook(model, data))
    assert not differing, f"{len(differing)} rows differ, the first {differing[:5]}"


def test_a_job_through_the_model_process_has_the_notebooks_digits(
    files: tuple[bytes, dict[str, tuple[Path, Any]]],
) -> None:
    data, saved = files
    path, model = saved["linear regression"]
    with running_server([str(path)], cwd=path.parent) as server:
        status, scored = page_job(requests.Session(), server.url, "rows.csv", data)
        assert status["state"] == "done" and status["problem_count"] == 0, status
        got = _scored(scored.decode("utf-8-sig"))
    differing = _differing(got, _notebook(model, data))
    assert not differing, f"{len(differing)} rows differ, the first {differing[:5]}"


def test_a_blank_line_costs_at_most_a_few_rows_their_last_digits(
    files: tuple[bytes, dict[str, tuple[Path, Any]]],
) -> None:
    """read_csv skips a blank line, and so does the job: its chunk then ends with rows that
    make no whole block of BLAS's (up to 3 here), computed otherwise, and so may the file's
    last chunk; every other row is the notebook's."""
    data, saved = files
    path, model = saved["linear regression"]
    lines = data.split(b"\n")
    blank = b"\n".join([*lines[:3], b"", *lines[3:]])
    client = jobs_client(ModelSpec(path=str(path)))
    upload = {
        "csrf_token": csrf_token(client.get("/").get_data(as_text=True)),
        "file": (io.BytesIO(blank), "rows.csv"),
    }
    response = client.post("/jobs", data=upload, content_type="multipart/form-data")
    job = response.headers["Location"]
    status = job_ended(client, f"{job}/status", 60)
    assert status["state"] == "done" and status["scored_rows"] == ROWS, status
    with client.get(f"{job}/result.csv") as result:
        rows = list(csv.DictReader(io.StringIO(result.get_data().decode("utf-8-sig"))))
    got = [[float(row["prediction"])] for row in rows if row["prediction"]]
    differing = _differing(got, _notebook(model, blank))
    assert len(differing) <= 6, differing

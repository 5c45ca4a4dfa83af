"""The page's CSV scoring answers as ``model.predict_proba(pd.read_csv(same bytes))`` does
(issue 12): empty cells and pandas' NA strings are missing values, in every dialect the page
accepts, through the real JobManager (in process) and a real spawned server.

The model is a pipeline with imputers (numbers: mean; a category column: most frequent, then
one-hot), trained here; every row's label must be the same, and every probability to 1e-9.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import requests
from flask.testing import FlaskClient
from pandas._libs.parsers import STR_NA_VALUES

from tests.conftest import iris_frame
from tests.helpers import (
    close_jobs,
    csrf_token,
    job_ended,
    jobs_client,
    local_client,
    page_job,
    running_server,
)
from winserve.model_info import ModelSpec
from winserve.spreadsheet import NA_VALUES

NUMBERS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
COLOUR = "colour"
COLOURS = ["red", "grün", "blue"]  # grün: a letter that Windows-1252 and UTF-16 spell apart
# pandas' own NA strings, each put in every model column once; " NA" is not one (no stripping)
NA_STRINGS = sorted(STR_NA_VALUES)


@dataclass(frozen=True)
class Dialect:
    name: str
    sep: str
    decimal: str
    encoding: str  # as the file is written, and as read_csv reads it


DIALECTS = [
    Dialect("comma", ",", ".", "utf-8"),
    Dialect("semicolon, decimal comma", ";", ",", "utf-8"),
    Dialect("tab", "\t", ".", "utf-8"),
    Dialect("UTF-8 with BOM", ",", ".", "utf-8-sig"),
    Dialect("Windows-1252 (German Excel)", ";", ",", "cp1252"),
    Dialect("UTF-16 (Excel's Unicode Text)", "\t", ".", "utf-16"),
]


def test_winserve_has_pandas_own_na_strings() -> None:
    assert set(STR_NA_VALUES) == NA_VALUES


def _training() -> tuple[pd.DataFrame, pd.Series]:
    x, y = iris_frame()
    rng = np.random.default_rng(3)
    frame = x.copy()
    frame[COLOUR] = pd.Series(rng.choice(COLOURS, len(frame)), dtype=object)
    frame.loc[frame.index[y == "virginica"][:30], COLOUR] = "blue"  # worth something
    for column in [*NUMBERS, COLOUR]:  # gaps, so that the imputers learn something
        frame.loc[rng.choice(frame.index, 12, replace=False), column] = np.nan
    return frame, y


def _model(impute: bool = True) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y = _training()
    category = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    if not impute:  # a model that refuses missing numbers
        x = x.dropna(subset=NUMBERS).fillna({COLOUR: "red"})
        y = y[x.index]
    numbers = SimpleImputer() if impute else "passthrough"
    columns = ColumnTransformer([("numbers", numbers, NUMBERS), ("colour", category, [COLOUR])])
    return make_pipeline(columns, LogisticRegression(max_iter=2000)).fit(x, y)


@pytest.fixture(scope="module")
def imputer_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    model = _model()
    path = tmp_path_factory.mktemp("csv-fidelity") / "imputer pipeline.joblib"
    joblib.dump(model, path)
    return model, path


def _rows() -> list[list[str]]:
    """Rows as a user's file has them: an id (not a model input), the model's columns, with
    empty cells and every NA string in every model column, a few rows with several gaps."""
    x, _ = iris_frame()
    values = x.sample(40, random_state=1).to_numpy().tolist()
    rows: list[list[str]] = []
    columns = [*NUMBERS, COLOUR]
    for index in range(len(NA_STRINGS) * len(columns) + 12):
        numbers = values[index % len(values)]
        cells = [repr(v) for v in numbers] + [COLOURS[index % 3]]
        if index < len(NA_STRINGS) * len(columns):
            cells[index % len(columns)] = NA_STRINGS[index // len(columns)]
        else:  # several gaps in a row, and " NA", which is text, not missing
            for gap in range(index % 4 + 1):
                cells[(index + gap) % len(columns)] = ""
            cells[-1] = " NA" if index % 2 else cells[-1]
        rows.append([f"r{index}", *cells])
    return rows


def _file(dialect: Dialect) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=dialect.sep, lineterminator="\r\n")
    writer.writerow(["id", *NUMBERS, COLOUR])
    for row in _rows():
        if dialect.decimal == ",":
            row = [row[0], *(c if c in NA_STRINGS else c.replace(".", ",") for c in row[1:])]
        writer.writerow(row)
    return out.getvalue().encode(dialect.encoding)


def _expected(model: Any, data: bytes, dialect: Dialect) -> tuple[list[Any], np.ndarray]:
    frame = pd.read_csv(
        io.BytesIO(data), sep=dialect.sep, decimal=dialect.decimal, encoding=dialect.encoding
    )
    inputs = frame[[*NUMBERS, COLOUR]]
    assert inputs[NUMBERS].isna().to_numpy().any() and inputs[COLOUR].isna().any()
    return list(model.predict(inputs)), model.predict_proba(inputs)


def _compare(scored: bytes, dialect: Dialect, labels: list[Any], probabilities: np.ndarray) -> None:
    assert scored.startswith(codecs.BOM_UTF8)
    text = scored.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=dialect.sep))
    assert [r["id"] for r in rows] == [r[0] for r in _rows()]
    for index, row in enumerate(rows):
        assert row["error"] == "", row
        assert row["prediction"] == labels[index], f"row {index + 1}: {row}"
        got = [float(row[f"probability {c}"].replace(",", ".")) for c in ("setosa", "versicolor")]
        got.append(float(row["probability virginica"].replace(",", ".")))
        assert got == pytest.approx(list(probabilities[index]), abs=1e-9), f"row {index + 1}"


# -- in process: the page's own JobManager on the model loaded in this process ----------------


@pytest.fixture(scope="module")
def client(imputer_model: tuple[Any, Path]) -> Iterator[FlaskClient]:
    client = local_client(ModelSpec(path=str(imputer_model[1])))
    yield client
    close_jobs(client)


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.name for d in DIALECTS])
def test_missing_cells_are_read_as_read_csv_reads_them(
    client: FlaskClient, imputer_model: tuple[Any, Path], dialect: Dialect
) -> None:
    data = _file(dialect)
    upload = {
        "csrf_token": csrf_token(client.get("/").get_data(as_text=True)),
        "file": (io.BytesIO(data), "rows.csv"),
    }
    response = client.post("/jobs", data=upload, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    job = response.headers["Location"]
    status = job_ended(client, f"{job}/status")
    assert status["state"] == "done" and status["problem_count"] == 0, status
    assert status["scored_rows"] == len(_rows())
    with client.get(f"{job}/result.csv") as result:
        scored = result.get_data()
    _compare(scored, dialect, *_expected(imputer_model[0], data, dialect))


def test_rows_a_model_refuses_for_missing_values_are_isolated_and_the_rest_scored(
    tmp_path: Path,
) -> None:
    """A model without a number imputer: its rows with a missing number get an error naming
    the column; every other row is scored as the model scores it."""
    model = _model(impute=False)
    path = tmp_path / "no imputer.joblib"
    joblib.dump(model, path)
    page = jobs_client(ModelSpec(path=str(path)))
    data = _file(DIALECTS[0])
    upload = {
        "csrf_token": csrf_token(page.get("/").get_data(as_text=True)),
        "file": (io.BytesIO(data), "rows.csv"),
    }
    job = page.post("/jobs", data=upload, content_type="multipart/form-data")
    assert job.status_code == 303
    where = job.headers["Location"]
    status = job_ended(page, f"{where}/status")
    assert status["state"] == "done", status
    with page.get(f"{where}/result.csv") as result:
        rows = list(csv.DictReader(io.StringIO(result.get_data().decode("utf-8-sig"))))
    frame = pd.read_csv(io.BytesIO(data))
    gaps = frame[NUMBERS].isna().any(axis=1).to_numpy()
    assert gaps.any() and not gaps.all()
    assert status["problem_count"] == int(gaps.sum())
    good = frame[~gaps][[*NUMBERS, COLOUR]]
    want = iter(model.predict(good))
    for index, row in enumerate(rows):
        if gaps[index]:
            assert row["prediction"] == "" and "missing value" in row["error"], row
            missing = [n for n in NUMBERS if pd.isna(frame.loc[index, n])]
            assert repr(missing[0]) in row["error"], row
        else:
            assert row["error"] == "" and row["prediction"] == next(want), row


# -- a real spawned server, as a colleague's browser uploads the file ------------------------


@pytest.mark.spawn
@pytest.mark.server
def test_a_real_server_scores_excel_files_with_gaps_as_read_csv_reads_them(
    imputer_model: tuple[Any, Path],
) -> None:
    model, path = imputer_model
    with running_server([str(path)], cwd=path.parent) as server:
        session = requests.Session()
        for dialect in (DIALECTS[4], DIALECTS[5]):  # German Excel CSV; Unicode Text
            data = _file(dialect)
            status, scored = page_job(session, server.url, "Tabelle1.csv", data)
            assert status["state"] == "done" and status["problem_count"] == 0, status
            _compare(scored, dialect, *_expected(model, data, dialect))

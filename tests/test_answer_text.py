"""A CSV job's chunk answered as text by the model host (host/answer_text.py, issue 29): the
same cells the web process would write from the values, the probabilities read back exactly
for the prediction log's sample, and the values kept wherever text cannot be plain cells."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from winserve.backends.pool import PoolBackend
from winserve.host.answer_text import as_text
from winserve.host.answers import Predicted
from winserve.model_info import ModelSpec
from winserve.scoring import bulk, jobs
from winserve.scoring import rows as rows_module
from winserve.scoring.rows import TextShares
from winserve.service import Service
from winserve.spreadsheet import Dialect

pytestmark = pytest.mark.timeout(120)

POINT, COMMA = Dialect(), Dialect("cp1252", ";", decimal_comma=True)


def _answer(predictions: list[Any], probabilities: list[list[float]] | None) -> Predicted:
    return {"ok": True, "predictions": predictions, "probabilities": probabilities}


def _asked(dialect: Dialect) -> dict[str, Any]:
    return {"separator": dialect.delimiter, "decimal_comma": dialect.decimal_comma}


@pytest.mark.parametrize("dialect", [POINT, COMMA], ids=["point", "comma"])
@pytest.mark.parametrize(
    ("predictions", "probabilities"),
    [
        (
            ["setosa", "=cmd()", "-1.5", "@x"],
            [[0.1, 0.9], [1 / 3, 2 / 3], [0.0, 1.0], [1e-300, 1.0]],
        ),
        ([1, 0, 1, 1], [[0.25, 0.75], [0.5, 0.5], [math.nan, 0.5], [0.125, 0.875]]),
        ([True, False], None),
        ([0.1, -2.5, 1e300, math.nan, 3.0], None),  # a regressor's values
    ],
)
def test_the_text_is_the_cells_the_web_process_writes(
    predictions: list[Any], probabilities: list[list[float]] | None, dialect: Dialect
) -> None:
    answered = as_text(_answer(predictions, probabilities), _asked(dialect))
    assert "probabilities" not in answered and answered["predictions"] == predictions
    cells = bulk.answer_cells(predictions, probabilities, dialect)
    assert cells is not None
    expected = "\n".join(dialect.delimiter.join(row[:-1]) for row in cells)  # no error cell
    assert answered["texts"] == expected
    if probabilities:  # read back for the log's sample: the same floats
        read = TextShares([f"{t}{dialect.delimiter}".split(dialect.delimiter)
                           for t in answered["texts"].split("\n")], dialect)  # fmt: skip
        assert str(list(read)) == str(probabilities)


@pytest.mark.parametrize(
    "predictions",
    [
        ["a,b", "c"],  # a label holding the separator
        ['say "hi"', "c"],  # a quote
        ["two\nlines", "c"],  # a line break
        [[1, 2], [3, 4]],  # one prediction per output
        [],
    ],
)
def test_what_plain_cells_cannot_hold_keeps_its_values(predictions: list[Any]) -> None:
    answer = _answer(predictions, None)
    assert as_text(answer, _asked(POINT)) is answer


def _scored(
    model_path: Path, folder: Path, text: str, texts: bool, answered_as_text: list[bool]
) -> list[str]:
    """A real job through a real spawned host; the scored lines without their request ids
    (``answered_as_text``: whether each chunk's answer came as text)."""
    pool = PoolBackend(ModelSpec(str(model_path)))
    pool.start()
    manager = jobs.JobManager(
        Service(pool, max_rows=100), max_rows=100_000, keep_seconds=60, parent=folder
    )
    real, real_cells = rows_module.RowScorer.start, rows_module.RowScorer._cells

    def start(scorer: Any, *args: Any, **options: Any) -> Any:
        options["as_text"] = texts and options.get("as_text", False)
        return real(scorer, *args, **options)

    def cells(scorer: Any, rows: Any, lines: Any, predicted: Any) -> Any:
        answered_as_text.append(predicted.prediction.texts is not None)
        return real_cells(scorer, rows, lines, predicted)

    try:
        pool.wait_ready(60)
        rows_module.RowScorer.start = start  # type: ignore[method-assign]
        rows_module.RowScorer._cells = cells  # type: ignore[method-assign]
        job = manager.new("rows.csv")
        manager.save(job, lambda path: path.write_text(text, encoding="utf-8"))
        manager.start(job)
        deadline = time.monotonic() + 60
        while job.state not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert job.state == "done", job.status()
        lines = job.result.read_text(encoding="utf-8-sig").splitlines()
    finally:
        rows_module.RowScorer.start = real  # type: ignore[method-assign]
        rows_module.RowScorer._cells = real_cells  # type: ignore[method-assign]
        manager.close()
        pool.close()
        shutil.rmtree(folder, ignore_errors=True)
    return [line.rsplit(",", 1)[0] for line in lines]


@pytest.mark.spawn
def test_a_job_scored_with_text_answers_writes_the_same_file(tmp_path: Path) -> None:
    """A tree's answers (the same floats whatever the chunk: no sums over a chunk's rows), a
    label that would start a formula, blank lines: the scored file is the same line for line
    with the host's text and without it (a label that needs quotes: the test above)."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True, as_frame=True)
    labels = np.array(["setosa", "=cmd()", "virginica"])[y]
    path = tmp_path / "tree.joblib"
    joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, labels), path)
    rng = np.random.default_rng(0)
    values = rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(3000, 4)).round(2)
    body = "\n".join(",".join(map(str, row)) if i % 500 else "" for i, row in enumerate(values))
    text = ",".join(x.columns) + "\n" + body + "\n"
    texts: list[bool] = []
    values: list[bool] = []
    with_text = _scored(path, tmp_path / "a", text, True, texts)
    without = _scored(path, tmp_path / "b", text, False, values)
    assert len(with_text) == 3001 and with_text == without
    assert all(texts) and len(texts) > 3 and not any(values)
    assert any("'=cmd()" in line for line in with_text)  # never a live formula

"""The prediction log read back as CSV (issue 26): one line per stored row of each request, its
inputs as a JSON object column → value (a request without rows, refused before it predicted,
gets one line with the row's fields empty). One model's log, or a folder's whole log (every
model, told apart by the ``model`` column).

A prediction of one value is the value itself, as a scored file has it (``leaves``, ``0.5``);
one of several outputs, and the probabilities, are JSON (a list or an object in one cell).

Reads on a connection of its own, ``query_only``, while the writer thread goes on writing (WAL:
readers never block the writer, nor it them). Lines are produced as the rows are read, so a
month of log streams to the client without being held in memory.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from winserve.predlog.store import decode_inputs
from winserve.spreadsheet import safe_text

HEADER = (
    "time",
    "request_id",
    "model",
    "version",
    "sha256",
    "route",
    "method",
    "caller",
    "token_name",
    "latency_ms",
    "status",
    "n_rows",
    "row",
    "inputs",
    "prediction",
    "probabilities",
)  # the request's fields, then the row's
QUERY = """
SELECT r.time, r.request_id, r.model, r.version, r.sha256, r.route, r.method, r.caller,
       r.token_name, r.latency_ms, r.status, r.n_rows, c.names, r.inputs, r.predictions,
       r.probabilities, r.sample
FROM requests AS r LEFT JOIN column_sets AS c ON c.id = r.columns
WHERE (r.model = :model OR :model IS NULL) AND r.time >= :since AND r.time < :until
ORDER BY r.id
"""
CHUNK = 500


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _rows(
    columns: str | None,
    inputs: str | bytes | None,
    predictions: str | None,
    probabilities: str | None,
    sample: str | None,
) -> Iterator[tuple[object, ...]]:
    """(row, inputs as a JSON object, prediction, probabilities) per stored row of a request;
    one empty line for a request without rows."""
    answers = json.loads(predictions) if predictions else []
    if not answers:
        yield ("", "", "", "")
        return
    names = json.loads(columns) if columns else None
    rows = decode_inputs(columns, inputs)
    shares = json.loads(probabilities) if probabilities else None
    numbers = json.loads(sample) if sample else range(len(answers))
    for i, number in enumerate(numbers):
        given = (
            _dumps(dict(zip(names, rows[i], strict=False))) if names and rows is not None else ""
        )
        yield (
            number,
            given,
            _cell(answers[i]),
            _dumps(shares[i]) if shares is not None else "",
        )


def _cell(answer: object) -> object:
    """A prediction as a CSV cell: one value as itself (a text made safe from spreadsheet
    formulas), several (a list, an object) as JSON. The cell was JSON for every answer, so a
    label read ``"leaves"`` in Excel (issue 26, a new user's finding)."""
    if answer is None:
        return ""
    if isinstance(answer, str):
        return safe_text(answer)
    if isinstance(answer, int | float):  # bool too: written True/False, as pandas writes it
        return answer
    return safe_text(_dumps(answer))


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def csv_lines(path: Path, model: str | None, since: float, until: float) -> Iterator[str]:
    """The log of ``model`` (None: of every model, a folder's) from ``since`` to ``until``
    (Unix seconds) as CSV text, in chunks. A log not written yet reads as the header alone."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")  # what Excel reads, on every OS
    out.writerow(HEADER)
    if not path.exists():
        yield buffer.getvalue()
        return
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        cursor = conn.execute(QUERY, {"model": model, "since": since, "until": until})
        while True:
            found = cursor.fetchmany(CHUNK)
            if not found:
                break
            for record in found:
                # what a colleague sent (an id, a text) never opens as a live formula
                fields = [safe_text(v) if isinstance(v, str) else v for v in record[1:12]]
                for line in _rows(*record[12:]):
                    out.writerow((_iso(record[0]), *fields, *line))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
    finally:
        conn.close()

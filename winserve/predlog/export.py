"""The prediction log read back as CSV (issue 26): one line per stored row of each request (a
request without rows, refused before it predicted, gets one line with the row columns empty).

Reads on a connection of its own, ``query_only``, while the writer thread goes on writing (WAL:
readers never block the writer, nor it them). Lines are produced as the rows are read, so a
month of log streams to the client without being held in memory.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

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
)
QUERY = """
SELECT r.time, r.request_id, r.model, r.version, r.sha256, r.route, r.method, r.caller,
       r.token_name, r.latency_ms, r.status, r.n_rows, w.row, w.inputs, w.prediction,
       w.probabilities
FROM requests AS r LEFT JOIN rows AS w ON w.request = r.id
WHERE r.model = ? AND r.time >= ? AND r.time < ?
ORDER BY r.id, w.row
"""
CHUNK = 500


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def csv_lines(path: Path, model: str, since: float, until: float) -> Iterator[str]:
    """The log of ``model`` from ``since`` to ``until`` (Unix seconds) as CSV text, in
    chunks. A log not written yet reads as the header alone."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")  # what Excel reads, on every OS
    out.writerow(HEADER)
    if not path.exists():
        yield buffer.getvalue()
        return
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        cursor = conn.execute(QUERY, (model, since, until))
        while True:
            found = cursor.fetchmany(CHUNK)
            if not found:
                break
            for row in found:
                # what a colleague sent (an id, a text) never opens as a live formula
                out.writerow(
                    (_iso(row[0]), *(safe_text(v) if isinstance(v, str) else v for v in row[1:]))
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
    finally:
        conn.close()

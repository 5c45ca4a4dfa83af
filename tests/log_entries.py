"""Prediction log entries for tests (issue 26): an ``Entry`` as a request leaves it, requests
written straight into a log file as the writer would (``fill``), and a folder the log cannot be
written in (``unwritable``). ``MONDAY``: a fixed clock hour that is also a UTC day's start.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from winserve.predlog import store
from winserve.predlog.record import Entry

MONDAY = 1_796_601_600.0  # 2026-12-07 00:00 UTC, a Monday (a clock hour and a UTC day)
INSERT = (
    "INSERT INTO requests (request_id, time, model, route, method, latency_ms, status, "
    "n_rows, kind, predictions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def fill(
    path: Path,
    rows: list[tuple[float, str, float, int, list[object] | None]],
    *,
    route: str = "/predict",
    kind: str = "request",
) -> None:
    """Requests (time, model, latency, status, predictions) inserted as the writer would."""
    conn = store.connect(path)
    try:
        conn.executemany(
            INSERT,
            [
                (f"r{i}", t, m, route, "POST", ms, st, len(p or []), kind, _json(p))
                for i, (t, m, ms, st, p) in enumerate(rows)
            ],
        )
    finally:
        conn.close()


def _json(predictions: list[object] | None) -> str | None:
    return None if predictions is None else json.dumps(predictions)


def entry(i: int, request: Any = None, prediction: Any = None, **fields: Any) -> Entry:
    """Request ``r<i>`` of model m, version 1, on /predict, from now; ``fields`` override."""
    values: dict[str, Any] = {
        "time": time.time(),
        "request_id": f"r{i}",
        "model": "m",
        "version": 1,
        "sha256": "ab" * 32,
        "route": "/predict",
        "method": "POST",
        "caller": "127.0.0.1",
        "latency_ms": 1.5,
        "status": 200,
        "n_rows": None if prediction is None else len(prediction.predictions),
        "request": request,
        "names": ["a", "b"],
        "prediction": prediction,
    }
    values.update(fields)
    return Entry(**values)


def unwritable(folder: Path) -> Callable[[], None]:
    """Make ``folder`` one the log cannot be written in; return what makes it writable again.
    Read-only modes where they bind (not as root, who writes anyway; not on Windows), else a
    file where the folder should be (what a mistyped log_path or a full volume gives too)."""
    if sys.platform != "win32" and os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return lambda: folder.chmod(stat.S_IRWXU)
    folder.write_text("not a folder")

    def restore() -> None:
        folder.unlink()
        folder.mkdir()

    return restore

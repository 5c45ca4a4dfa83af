"""Each model's use in a period, in one pass (issue 26): a folder's monitor index lists its
models with their requests, errors and last request, from the prediction log.

::

    requests (SQLite, query-only), the period as a range of ids (as summary.py reads it)
      ──► GROUP BY model: count, errors (status ≥ 400), max(time) ──► {model: ModelUse}

Prediction requests only (``kind = 'request'``), as the monitor page's request counts: a CSV
job is one entry of another kind.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from winserve.predlog.summary import IDS

PER_MODEL = """
SELECT r.model, count(*), sum(r.status >= 400), max(r.time)
FROM requests AS r
WHERE r.id BETWEEN :first AND :last AND r.time >= :since AND r.time < :until
  AND r.kind = 'request'
GROUP BY r.model
"""


@dataclass(frozen=True)
class ModelUse:
    """One model's requests in a period."""

    requests: int
    errors: int
    last: float  # Unix seconds, UTC: its latest request


def per_model(path: Path, since: float, until: float) -> dict[str, ModelUse]:
    """Each model's requests from ``since`` to ``until`` (Unix seconds); a model without any
    is absent. A log not written yet: none."""
    if not path.exists():
        return {}
    # as export.py: query_only rather than a mode=ro URI, which cannot open a WAL file whose
    # -shm another process holds on every platform
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        first, last = conn.execute(IDS, {"since": since, "until": until}).fetchone()
        if first is None:
            return {}
        asked = {"first": first, "last": last, "since": since, "until": until}
        return {
            str(model): ModelUse(int(n), int(errors or 0), float(latest))
            for model, n, errors, latest in conn.execute(PER_MODEL, asked)
        }
    finally:
        conn.close()

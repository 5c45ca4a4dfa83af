"""Who used a model (issue 26): per caller, the requests of a period, how many failed, and
when they were last seen, from the prediction log's ``token_name`` column.

::

    requests (SQLite, query-only), the period as a range of ids (as summary.py reads it)
      ──► GROUP BY token_name: count, errors (status ≥ 400), max(time) ──► CallerUse, busiest first

A caller is a token's name (``winserve token add``; ``owner`` for the ``token`` setting),
``local`` (this computer, when no token is set) or ``-`` (anyone else, or an entry written
before callers were named). At most ``MAX_CALLERS`` are listed: the owner's page names who
used the model most.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from winserve.predlog.summary import IDS, WHERE

MAX_CALLERS = 50
USED = f"""
SELECT coalesce(r.token_name, '-') AS who, count(*), sum(r.status >= 400), max(r.time)
FROM requests AS r WHERE {WHERE}
GROUP BY who ORDER BY count(*) DESC, who LIMIT :limit
"""


@dataclass(frozen=True)
class CallerUse:
    """One caller's use of a model in a period."""

    name: str
    requests: int
    errors: int
    last_seen: float  # Unix seconds, UTC

    def as_dict(self) -> dict[str, Any]:
        return {
            "caller": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "last_seen": datetime.fromtimestamp(self.last_seen, UTC).isoformat(timespec="seconds"),
        }


def used(
    conn: sqlite3.Connection, model: str, since: float, until: float, limit: int = MAX_CALLERS
) -> list[CallerUse]:
    """Who sent ``model`` requests from ``since`` to ``until`` (Unix seconds), busiest first."""
    first, last = conn.execute(IDS, {"since": since, "until": until}).fetchone()
    if first is None:
        return []
    found = conn.execute(
        USED,
        {
            "first": first,
            "last": last,
            "model": model,
            "since": since,
            "until": until,
            "limit": limit,
        },
    )
    return [
        CallerUse(str(who), int(n), int(errors or 0), float(seen)) for who, n, errors, seen in found
    ]


def used_file(
    path: Path, model: str, since: float, until: float, limit: int = MAX_CALLERS
) -> list[CallerUse]:
    """``used`` on a query-only connection of its own; a log not written yet: nobody."""
    if not path.exists():
        return []
    # as export.py: query_only rather than a mode=ro URI, which cannot open a WAL file whose
    # -shm another process holds on every platform
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        return used(conn, model, since, until, limit)
    finally:
        conn.close()

"""The monitor page's figures for one model and period (issue 26), as SQL aggregates over the
prediction log: requests, errors and latency per hour or day, the errors by kind, and the
predictions per bucket (the share of each class, or a regressor's median and 5th/95th
percentiles).

::

    requests (SQLite, query-only), the period as a range of ids
      ──► GROUP BY bucket, status, route: counts, group_concat(latency) ─► requests, errors
                                           │ one string per group         per bucket, errors
                                           ▼                              by kind
                                   numpy percentiles                  ─► latency p50 / p95
      json_each(predictions) ──► GROUP BY bucket, value               ─► class shares
                             ──► GROUP BY bucket: group_concat(value) ─► p5 / median / p95
                                        │ a few hundred rows and strings reach Python
                                        ▼
                                   Summary ─► monitor page (charts, tables), monitor.json

SQLite does the passes over rows: a week of a busy model is tens of thousands of them, and
Python looping over them took seconds where these queries take tens of milliseconds (the
issue: ``/monitor.json`` in ~0.2 s for 50,000 rows). A percentile is the value at rank
⌈q·n⌉ of the n sorted values (numpy's ``method="inverted_cdf"``): a value that was logged,
never an interpolation. Buckets are clock hours or UTC days (``bucket_seconds``), so two
pages of overlapping periods agree.

Latency counts the prediction requests (``kind = 'request'``): a CSV job's entry holds its
whole duration, which would hide the requests' own p95; the predictions count every row the
log kept, the jobs' samples too.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOUR, DAY = 3600, 86_400
HOURLY_UP_TO = 2 * DAY  # a period this long or shorter is shown per hour, a longer one per day
MAX_BUCKETS = 400  # a period longer than this many days is shown per week
MAX_CLASSES = 12  # the most frequent classes shown one by one; the rest are "other"
OTHER = "other"


def bucket_seconds(since: float, until: float) -> int:
    """An hour for a period of at most two days, else a day (a week for a very long one)."""
    span = until - since
    if span <= HOURLY_UP_TO:
        return HOUR
    return DAY if span / DAY <= MAX_BUCKETS else 7 * DAY


def bucket_starts(since: float, until: float, size: int) -> list[float]:
    """The start of every bucket the period touches (aligned on multiples of ``size``)."""
    first = int(since // size) * size
    return [float(t) for t in range(first, math.ceil(until), size)] or [float(first)]


@dataclass(frozen=True)
class Bucket:
    """One hour or day: requests, errors (status 400 and above), latency p50/p95 (ms)."""

    start: float
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": _round(self.p50_ms),
            "p95_ms": _round(self.p95_ms),
        }


@dataclass(frozen=True)
class ErrorKind:
    """Answers of one status on one route."""

    status: int
    route: str
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "route": self.route, "count": self.count}


@dataclass(frozen=True)
class Predictions:
    """The predictions of one bucket: ``shares`` (class → share of the rows) for a
    classifier, ``p5``/``median``/``p95`` for a regressor."""

    start: float
    rows: int
    shares: tuple[tuple[str, float], ...] = ()
    p5: float | None = None
    median: float | None = None
    p95: float | None = None

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"start": self.start, "rows": self.rows}
        if self.shares:
            answer["shares"] = {c: round(s, 6) for c, s in self.shares}
        if self.median is not None:
            answer.update(p5=self.p5, median=self.median, p95=self.p95)
        return answer


@dataclass(frozen=True)
class Summary:
    bucket_seconds: int
    buckets: tuple[Bucket, ...]
    errors: tuple[ErrorKind, ...]
    classifier: bool
    classes: tuple[str, ...]  # in the charts' order (most frequent first, "other" last)
    predictions: tuple[Predictions, ...]
    requests: int
    p50_ms: float | None
    p95_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket_seconds": self.bucket_seconds,
            "requests": self.requests,
            "errors": sum(b.errors for b in self.buckets),
            "p50_ms": _round(self.p50_ms),
            "p95_ms": _round(self.p95_ms),
            "buckets": [b.as_dict() for b in self.buckets],
            "errors_by_kind": [e.as_dict() for e in self.errors],
            "classes": list(self.classes),
            "predictions": [p.as_dict() for p in self.predictions],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# :size is the bucket's length in seconds; every query takes :model, :since, :until and
# :first, :last, the ids of the period's first and last entries: ids grow with time (one
# writer), so the period is a range of the table's own key, read in order; through the time
# index each row was a lookup, two to three times slower (50,000 rows, measured)
WHERE = (
    "r.id BETWEEN :first AND :last AND r.model = :model AND r.time >= :since AND r.time < :until"
)
BUCKET = "CAST(r.time / :size AS INTEGER) * :size"
IDS = "SELECT min(id), max(id) FROM requests WHERE time >= :since AND time < :until"

# one pass for the counts, the errors and the latencies: the latencies come back as text,
# one string per group, and numpy finds the percentiles (window functions sorting in SQLite
# took twice as long, measured)
REQUESTS = f"""
SELECT {BUCKET} AS b, r.status, r.route, count(*), group_concat(r.latency_ms)
FROM requests AS r WHERE {WHERE} AND r.kind = 'request'
GROUP BY b, r.status, r.route
"""

CLASSES = f"""
SELECT {BUCKET} AS b, CAST(j.value AS TEXT) AS v, count(*)
FROM requests AS r, json_each(r.predictions) AS j
WHERE {WHERE} AND r.predictions IS NOT NULL
GROUP BY b, v
"""

VALUES = f"""
SELECT {BUCKET} AS b, count(*), group_concat(j.value)
FROM requests AS r, json_each(r.predictions) AS j
WHERE {WHERE} AND r.predictions IS NOT NULL AND j.type IN ('integer', 'real')
GROUP BY b
"""
MAX_ERROR_KINDS = 50


def percentiles(values: Any, qs: Sequence[int]) -> list[float | None]:
    """The value at rank ⌈q·n⌉ of the sorted ``values`` for each q (percent), None if none."""
    import numpy as np

    if not len(values):
        return [None for _ in qs]
    found = np.percentile(values, qs, method="inverted_cdf")
    return [float(v) for v in found]


def _numbers(texts: Sequence[str]) -> Any:
    """group_concat's comma-separated numbers, as one float array."""
    import numpy as np

    joined = ",".join(t for t in texts if t)
    return np.array(joined.split(",") if joined else [], dtype="float64")


def summarize(
    conn: sqlite3.Connection, model: str, since: float, until: float, *, classifier: bool
) -> Summary:
    """The figures of ``model`` from ``since`` to ``until`` (Unix seconds, UTC)."""
    import numpy as np

    size = bucket_seconds(since, until)
    args: dict[str, Any] = {"model": model, "since": since, "until": until, "size": size}
    args["first"], args["last"] = conn.execute(IDS, args).fetchone()
    counts: dict[float, list[int]] = {}
    texts: dict[float, list[str]] = {}
    kinds: dict[tuple[int, str], int] = {}
    for b, status, route, n, latencies in conn.execute(REQUESTS, args):
        count = counts.setdefault(float(b), [0, 0])
        count[0] += n
        texts.setdefault(float(b), []).append(latencies)
        if status >= 400:
            count[1] += n
            kinds[(int(status), str(route))] = kinds.get((int(status), str(route)), 0) + n
    latency = {b: _numbers(t) for b, t in texts.items()}
    buckets = tuple(
        Bucket(
            start,
            *counts.get(start, (0, 0)),
            *percentiles(latency.get(start, ()), (50, 95)),
        )
        for start in bucket_starts(since, until, size)
    )
    everything = np.concatenate(list(latency.values())) if latency else ()
    p50, p95 = percentiles(everything, (50, 95))
    errors = tuple(
        ErrorKind(status, route, n)
        for (status, route), n in sorted(kinds.items(), key=lambda k: (-k[1], k[0]))
    )[:MAX_ERROR_KINDS]
    classes: tuple[str, ...] = ()
    if classifier:
        classes, predictions = _class_shares(conn, args, buckets)
    else:
        found = {float(b): (n, _numbers([t])) for b, n, t in conn.execute(VALUES, args)}
        predictions = tuple(
            Predictions(
                b.start, int(found[b.start][0]), (), *percentiles(found[b.start][1], (5, 50, 95))
            )
            if b.start in found
            else Predictions(b.start, 0)
            for b in buckets
        )
    return Summary(
        size,
        buckets,
        errors,
        classifier,
        classes,
        predictions,
        sum(b.requests for b in buckets),
        p50,
        p95,
    )


def _class_shares(
    conn: sqlite3.Connection, args: dict[str, Any], buckets: tuple[Bucket, ...]
) -> tuple[tuple[str, ...], tuple[Predictions, ...]]:
    counts: dict[float, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for b, value, n in conn.execute(CLASSES, args):
        label = "missing" if value is None else str(value)
        counts.setdefault(float(b), {})[label] = counts.get(float(b), {}).get(label, 0) + n
        totals[label] = totals.get(label, 0) + n
    ranked = sorted(totals, key=lambda c: (-totals[c], c))
    shown = ranked[:MAX_CLASSES]
    classes = (*shown, OTHER) if len(ranked) > MAX_CLASSES else tuple(shown)
    predictions = []
    for bucket in buckets:
        seen = counts.get(bucket.start, {})
        rows = sum(seen.values())
        if not rows:
            predictions.append(Predictions(bucket.start, 0))
            continue
        per = {c: seen.get(c, 0) for c in shown}
        if len(ranked) > MAX_CLASSES:
            per[OTHER] = rows - sum(per.values())
        predictions.append(
            Predictions(bucket.start, rows, tuple((c, per[c] / rows) for c in classes))
        )
    return classes, tuple(predictions)


def summarize_file(
    path: Path, model: str, since: float, until: float, *, classifier: bool
) -> Summary:
    """``summarize`` on a query-only connection of its own; a log not written yet is empty."""
    if not path.exists():
        conn = sqlite3.connect(":memory:")
        from winserve.predlog.store import SCHEMA

        conn.executescript(SCHEMA)
    else:
        conn = sqlite3.connect(path, timeout=1.0)
        conn.execute("PRAGMA query_only = ON")
    try:
        return summarize(conn, model, since, until, classifier=classifier)
    finally:
        conn.close()

"""Drift of a model's inputs (issue 26): the Population Stability Index of each input column
between the model's reference sample and the inputs the prediction log kept for a period.

::

    reference sample (pandas frame, host/reference.py's read) ─┐
                                                               ├─► bins ─► shares ─► PSI, words
    logged inputs (SQLite, read-only: logged_columns) ─────────┘

Bins: for a number column the reference's deciles (at most 10 bins, fewer when values
repeat), for a category each value of the reference (the 20 most frequent; the rest, and
values the reference never had, "other"); a missing value is a bin of its own in both. PSI
= Σ (actual − expected) · ln(actual / expected) over the bins, an empty bin counted as
``FLOOR`` (the usual guard: ln 0 is not a number). Words as the credit-scoring rule of thumb
the issue names: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.

Everything here but ``logged_columns`` is a pure function of values, tested with known
answers (tests/test_drift.py).
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLOOR = 1e-4  # the share an empty bin counts as
MAX_CATEGORIES = 20  # categories binned one by one; the rest are "other"
MISSING = "missing"
OTHER = "other"
STABLE, SHIFTED = 0.1, 0.25
MAX_LOGGED_ROWS = 50_000  # the most recent rows read for one period: enough for shares
# a period with more requests than this is read one request in k (k = requests / this),
# spread over the whole period: a bin's share from 20,000 rows is within ±0.7 percentage
# points (two standard errors at 10 %), and decoding logged inputs is the monitor's largest
# cost (0.18 s of CPU for 50,000 rows of JSON, bench/monitor.py)
SAMPLE_REQUESTS = 20_000


def words(psi: float | None) -> str:
    """The rule of thumb's words for ``psi`` (None: too few rows to say)."""
    if psi is None:
        return "no rows"
    if psi < STABLE:
        return "stable"
    if psi <= SHIFTED:
        return "moderate"
    return "shifted"


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The PSI of two share vectors over the same bins (each summing to 1)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, FLOOR), max(a, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def decile_edges(reference: Sequence[Any]) -> list[float]:
    """The reference's deciles (its 10 %, 20 %, … 90 % points, repeated ones once), the
    inner edges of the number bins: values of the reference ("inverted_cdf", not
    interpolated), so a column of few distinct values gets a bin per value."""
    import numpy as np

    values = np.asarray([float(v) for v in reference if not _missing(v)], dtype="float64")
    if values.size == 0:
        return []
    return sorted(
        {float(q) for q in np.quantile(values, np.linspace(0.1, 0.9, 9), method="inverted_cdf")}
    )


def _floats(values: Sequence[Any]) -> Any:
    """``values`` as a float64 array (None and NaN as NaN) when they are all floats or
    missing, the usual logged number column; else None (a text or an int among them: the
    loops below judge each value). The loops took ~75 % of drift's CPU for 50,000 rows."""
    import numpy as np

    if not all(v is None or type(v) is float for v in values):
        return None
    return np.array(values, dtype="float64")  # None becomes NaN


def number_shares(values: Sequence[Any], edges: Sequence[float]) -> list[float]:
    """The shares of ``values`` in the bins (−∞, e1], (e1, e2], …, (ek, ∞), then missing."""
    import numpy as np

    total = len(values)
    floats = _floats(values)
    if floats is not None and total:
        nan = np.isnan(floats)
        # side="left": a value equal to an edge falls in the bin the edge closes
        index = np.searchsorted(np.asarray(edges, dtype="float64"), floats[~nan], side="left")
        found = np.bincount(index, minlength=len(edges) + 1).tolist()
        return [c / total for c in [*found, int(nan.sum())]]
    counts = [0] * (len(edges) + 2)
    present: list[float] = []
    for v in values:
        if _missing(v):
            counts[-1] += 1
        else:
            try:
                present.append(float(v))
            except (TypeError, ValueError):  # a text sent for a number: counted as missing
                counts[-1] += 1
    if present:
        # side="left": a value equal to an edge falls in the bin the edge closes
        index = np.searchsorted(np.asarray(edges, dtype="float64"), present, side="left")
        for i, n in zip(*np.unique(index, return_counts=True), strict=True):
            counts[int(i)] += int(n)
    total = len(values)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def category_bins(reference: Sequence[Any]) -> list[str]:
    """The reference's most frequent values (as text), the bins of a category column."""
    seen = Counter(str(v) for v in reference if not _missing(v))
    return [v for v, _ in seen.most_common(MAX_CATEGORIES)]


def category_shares(values: Sequence[Any], bins: Sequence[str]) -> list[float]:
    """The shares of ``values`` in each of ``bins``, then "other", then missing."""
    where = {b: i for i, b in enumerate(bins)}
    counts = [0] * (len(bins) + 2)
    for v in values:
        if _missing(v):
            counts[-1] += 1
        else:
            counts[where.get(str(v), len(bins))] += 1
    total = len(values)
    return [c / total for c in counts] if total else [0.0] * len(counts)


@dataclass(frozen=True)
class ColumnDrift:
    """One input's drift: its PSI (None without logged rows), the words, and the bins with
    the reference's and the period's shares (for a table or a chart)."""

    name: str
    kind: str  # "number" or "category"
    psi: float | None
    words: str
    bins: tuple[str, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]
    logged_rows: int
    # a number column's median moved "up" or "down" (the summary's ↑ ↓), else ""
    direction: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "psi": None if self.psi is None else round(self.psi, 6),
            "words": self.words,
            "logged_rows": self.logged_rows,
            "direction": self.direction,
            "bins": [
                {"bin": b, "reference": round(e, 6), "logged": round(a, 6)}
                for b, e, a in zip(self.bins, self.expected, self.actual, strict=True)
            ],
        }


def _number_labels(edges: Sequence[float]) -> list[str]:
    bounds = ["−∞", *(f"{e:.4g}" for e in edges), "∞"]
    return [f"({bounds[i]}, {bounds[i + 1]}]" for i in range(len(bounds) - 1)] + [MISSING]


def column_drift(
    name: str, number: bool, reference: Sequence[Any], logged: Sequence[Any]
) -> ColumnDrift:
    """The drift of one column: ``number`` for decile bins, else category bins."""
    if number:
        edges = decile_edges(reference)
        labels = _number_labels(edges)
        expected = number_shares(reference, edges)
        actual = number_shares(logged, edges)
    else:
        bins = category_bins(reference)
        labels = [*bins, OTHER, MISSING]
        expected = category_shares(reference, bins)
        actual = category_shares(logged, bins)
    value = psi(expected, actual) if logged and reference else None
    moved = _direction(reference, logged) if number and value is not None else ""
    return ColumnDrift(
        name,
        "number" if number else "category",
        value,
        words(value),
        tuple(labels),
        tuple(expected),
        tuple(actual),
        len(logged),
        moved,
    )


def _median(values: Sequence[Any]) -> float | None:
    floats = _floats(values)
    if floats is not None:
        import numpy as np

        present = floats[~np.isnan(floats)]
        return float(np.median(present)) if present.size else None
    present = [v for v in values if isinstance(v, int | float) and not _missing(v)]
    return statistics.median(present) if present else None


def _direction(reference: Sequence[Any], logged: Sequence[Any]) -> str:
    """ "up" or "down" as the logged median is above or below the reference's, else ""."""
    before, after = _median(reference), _median(logged)
    if before is None or after is None or before == after:
        return ""
    return "up" if after > before else "down"


def is_number_column(values: Sequence[Any]) -> bool:
    """Whether a reference column is numbers (bools and texts are categories)."""
    present = [v for v in values if not _missing(v)]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )


def drift(
    reference: dict[str, list[Any]],
    logged: dict[str, list[Any]],
    kinds: dict[str, str] | None = None,
) -> list[ColumnDrift]:
    """The drift of each reference column (in its order), against the logged values.
    ``kinds``: the model's kind of each input (``Feature.kind``): a "category" coded as
    numbers (1, 2, 3) is binned by value, not by deciles; a column whose kind is unknown or
    "any" is a number column when the reference holds numbers only."""
    kinds = kinds or {}

    def number(name: str, values: list[Any]) -> bool:
        kind = kinds.get(name, "any")
        return kind == "number" or (kind == "any" and is_number_column(values))

    return [
        column_drift(name, number(name, values), values, logged.get(name, []))
        for name, values in reference.items()
    ]


QUERY = """
SELECT c.names, r.inputs,
       CASE WHEN typeof(r.inputs) = 'text' THEN json_array_length(r.inputs) END
FROM requests AS r JOIN column_sets AS c ON c.id = r.columns
WHERE r.id BETWEEN :first AND :last AND r.id * 2654435761 % 4294967296 / 65536 % :every = 0
      AND r.model = :model AND r.time >= :since AND r.time < :until AND r.inputs IS NOT NULL
ORDER BY r.id DESC
"""
# ids grow with time (one writer): the period is a range of the table's key (summary.py);
# one id in k is picked by a multiplicative hash (Knuth's: its high bits, the low ones keep
# the id's parity), not every k-th id, which two models' alternating requests would alias
# onto one of them
IDS = "SELECT min(id), max(id) FROM requests WHERE time >= ? AND time < ?"


def logged_columns(
    path: Path, model: str, since: float, until: float, columns: Sequence[str]
) -> tuple[dict[str, list[Any]], int]:
    """``logged_sample`` without the sampling step: (columns, rows read)."""
    found, rows_read, _ = logged_sample(path, model, since, until, columns)
    return found, rows_read


def logged_sample(
    path: Path, model: str, since: float, until: float, columns: Sequence[str]
) -> tuple[dict[str, list[Any]], int, int]:
    """The logged inputs of ``model`` from ``since`` to ``until`` (Unix seconds), column by
    column for ``columns``, the most recent MAX_LOGGED_ROWS rows; the rows read; and k, when
    one request in k was read (a period of more than SAMPLE_REQUESTS requests, of any model;
    else 1). A query-only connection of its own (WAL: the writer is not blocked, nor this by
    it).

    Decoded in bulk, per run of requests with the same column names: their float64 bytes at
    once (numpy), their JSON texts in one ``json.loads``; a request at a time took
    ~4x the CPU (two JSON parses and a Python loop per request: 0.22 s for 50,000 one-row
    requests, bench/monitor.py)."""
    found: dict[str, list[Any]] = {c: [] for c in columns}
    if not path.exists():
        return found, 0, 1
    rows_read = 0
    every = 1
    # runs of requests with the same column names stored the same way, newest first
    runs: list[tuple[str, bool, list[Any]]] = []
    # as export.py: query_only rather than a mode=ro URI, which cannot open a WAL file whose
    # -shm is missing (the writer stopped) without write access to the folder
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        first, last = conn.execute(IDS, (since, until)).fetchone()
        if first is None:
            return found, 0, 1
        every = max(1, math.ceil((last - first + 1) / SAMPLE_REQUESTS))
        asked = {"first": first, "last": last, "every": every, "model": model}
        asked.update(since=since, until=until)
        widths: dict[str, int] = {}
        for names_text, inputs, count in conn.execute(QUERY, asked):
            numbers = isinstance(inputs, bytes)
            if not runs or runs[-1][0] != names_text or runs[-1][1] != numbers:
                runs.append((names_text, numbers, []))
            runs[-1][2].append(inputs)
            if numbers:
                width = widths.get(names_text)
                if width is None:
                    width = widths[names_text] = len(json.loads(names_text)) or 1
                rows_read += len(inputs) // (8 * width)
            else:
                rows_read += count or 0
            if rows_read >= MAX_LOGGED_ROWS:
                break
    finally:
        conn.close()
    for names_text, numbers, stored in runs:
        names = json.loads(names_text)
        rows: list[Any] = []
        if numbers:
            rows = _numbers(b"".join(stored), len(names))
        else:  # one parse for the run: "[[rows of one], [rows of another], …]"
            for part in json.loads("[" + ",".join(stored) + "]"):
                rows += part
        by_column = list(zip(*rows, strict=False)) if rows else []
        for c in columns:
            if c in names and names.index(c) < len(by_column):
                found[c] += by_column[names.index(c)]
    return found, rows_read, every


def _numbers(data: bytes, width: int) -> list[list[float | None]]:
    """Rows of float64 bytes (store._inputs) as lists, NaN as None (store.decode_inputs)."""
    import numpy as np

    values = np.frombuffer(data, dtype="float64").reshape(-1, width).astype(object)
    values[values != values] = None  # NaN is the only value not equal to itself
    rows: list[list[float | None]] = values.tolist()
    return rows

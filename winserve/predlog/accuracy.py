"""How right a model was once the truth came in (issue 26): accuracy and macro F1 for a
classifier, MAE and RMSE for a regressor, per week and per version of the model.

::

    Joined (prediction time, version, prediction, outcome)  ── outcomes.joined (SQLite)
        │ grouped by (ISO week of the prediction, version), and by version alone
        ▼
    Score (week, version, rows, accuracy / macro F1, or MAE / RMSE)

Pure functions of values, no scikit-learn in the web process: both metrics are a few lines,
and tests/test_accuracy.py checks them against ``sklearn.metrics`` on known data. A
classifier's labels are compared as text (``label_text``): the outcome file's ``1`` and
the model's ``1`` (or ``1.0``, or ``True``) are the same class, as a person reading both
files would say. Macro F1 is scikit-learn's ``f1_score(average="macro")``: the unweighted
mean over every label seen in the outcomes or the predictions, a label never predicted (or
never true) scoring 0.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

ALL_WEEKS = "all"  # the week of a version's row over the whole period


def label_text(value: Any) -> str:
    """A label as text, the same for the same class however it was written: an integral
    number without its ``.0`` (``1.0`` → ``1``), a text without surrounding spaces, a
    bool as Python writes it."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text
        if math.isfinite(number) and number.is_integer() and "e" not in text.lower():
            return str(int(number))  # "1.0" in a file is the class 1
        return text
    return str(value)


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """The share of rows whose prediction is the outcome."""
    if not truth:
        raise ValueError("no rows")
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """The mean over labels of F1 = 2·TP / (2·TP + FP + FN), as sklearn's
    ``f1_score(average="macro")`` (a label with no TP, FP or FN does not occur)."""
    if not truth:
        raise ValueError("no rows")
    hits: Counter[str] = Counter()
    said: Counter[str] = Counter(predicted)
    true: Counter[str] = Counter(truth)
    for t, p in zip(truth, predicted, strict=True):
        if t == p:
            hits[t] += 1
    labels = set(said) | set(true)
    scores = [2 * hits[k] / (said[k] + true[k]) for k in labels]
    return sum(scores) / len(scores)


def mae(truth: Sequence[float], predicted: Sequence[float]) -> float:
    if not truth:
        raise ValueError("no rows")
    return sum(abs(t - p) for t, p in zip(truth, predicted, strict=True)) / len(truth)


def rmse(truth: Sequence[float], predicted: Sequence[float]) -> float:
    if not truth:
        raise ValueError("no rows")
    squares = sum((t - p) ** 2 for t, p in zip(truth, predicted, strict=True))
    return math.sqrt(squares / len(truth))


def number(value: Any) -> float | None:
    """``value`` as a finite number, or None (a text, a missing value, a bool)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def week_start(seconds: float) -> float:
    """The Monday 00:00 UTC that begins the ISO week of a moment (Unix seconds)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    monday = moment.date() - timedelta(days=moment.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC).timestamp()


def week_of(seconds: float) -> str:
    """The ISO week of a moment (UTC) with its Monday: ``2026-W49 (from 2026-11-30)``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    year, week, weekday = moment.isocalendar()
    monday = (moment - timedelta(days=weekday - 1)).date()
    return f"{year}-W{week:02d} (from {monday.isoformat()})"


class Joined(NamedTuple):
    """One outcome beside the logged prediction it was joined with."""

    time: float  # when the prediction was made (Unix seconds)
    version: str  # the model version that made it (its label: see outcomes.version_label)
    prediction: Any
    outcome: str  # as uploaded (text)


@dataclass(frozen=True)
class Score:
    """The metrics of the rows of one week (or ``ALL_WEEKS``) and one version."""

    week: str
    version: str
    rows: int
    accuracy: float | None = None  # classifier
    macro_f1: float | None = None
    mae: float | None = None  # regressor
    rmse: float | None = None
    skipped: int = 0  # regressor rows whose prediction was not a number (a text, missing)
    start: float = 0.0  # the week's Monday 00:00 UTC (Unix seconds); 0 for ALL_WEEKS

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"week": self.week, "version": self.version, "rows": self.rows}
        for name in ("accuracy", "macro_f1", "mae", "rmse"):
            value = getattr(self, name)
            if value is not None:
                found[name] = round(value, 6)
        if self.skipped:
            found["skipped"] = self.skipped
        return found


def score(week: str, version: str, rows: Sequence[Joined], regressor: bool) -> Score:
    """The metrics of ``rows``: MAE and RMSE when ``regressor``, else accuracy and macro F1."""
    found = _score(week, version, rows, regressor)
    if week == ALL_WEEKS or not rows:
        return found
    return replace(found, start=week_start(rows[0].time))


def _score(week: str, version: str, rows: Sequence[Joined], regressor: bool) -> Score:
    if regressor:
        pairs = [
            (t, p)
            for t, p in ((number(r.outcome), number(r.prediction)) for r in rows)
            if t is not None and p is not None
        ]
        truth = [t for t, _ in pairs]
        predicted = [p for _, p in pairs]
        skipped = len(rows) - len(pairs)
        if not pairs:
            return Score(week, version, len(rows), skipped=skipped)
        return Score(
            week,
            version,
            len(pairs),
            mae=mae(truth, predicted),
            rmse=rmse(truth, predicted),
            skipped=skipped,
        )
    labels = [label_text(r.outcome) for r in rows]
    said = [label_text(r.prediction) for r in rows]
    return Score(
        week, version, len(rows), accuracy=accuracy(labels, said), macro_f1=macro_f1(labels, said)
    )


def scores(joined: Iterable[Joined], regressor: bool) -> list[Score]:
    """Per version (newest prediction first), a row per week (newest first), then the
    version's row over every week (``ALL_WEEKS``)."""
    by_version: dict[str, list[Joined]] = defaultdict(list)
    for row in joined:
        by_version[row.version].append(row)
    found: list[Score] = []
    newest_first = sorted(by_version.items(), key=lambda kv: -max(r.time for r in kv[1]))
    for version, rows in newest_first:
        by_week: dict[str, list[Joined]] = defaultdict(list)
        for row in rows:
            by_week[week_of(row.time)].append(row)
        for week in sorted(by_week, reverse=True):
            found.append(score(week, version, by_week[week], regressor))
        found.append(score(ALL_WEEKS, version, rows, regressor))
    return found

"""What the monitor page and ``monitor.json`` show of one model for one period (issue 26):
the figures web/monitor.py gathers, the sentence on top, and the charts drawn from them.

::

    monitor.monitor() ─► Monitor (drift per input, log status, summary.Summary, events)
                           ├─ .summary   the sentence on top ("1 of 4 inputs has drifted …")
                           ├─ .charts()  web/monitor_charts.py's SVG, each with its title
                           └─ .as_dict() monitor.json (the same figures)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from winserve.predlog import drift, events, summary
from winserve.predlog.summary import DAY, HOUR
from winserve.web.monitor_charts import (
    histogram_pair,
    latency_chart,
    long_label,
    requests_chart,
    shares_chart,
    timeline,
    values_chart,
)

PER = {HOUR: "hour", DAY: "day"}


def period_words(since: datetime, until: datetime, ongoing: bool) -> str:
    """``since Mon 30 Nov 14:05 UTC``, or ``from … to …`` for a period in the past: how a
    model's monitor and the folder's index name their period."""
    start = long_label(since.timestamp(), HOUR)
    if ongoing:
        return f"since {start} UTC"
    return f"from {start} to {long_label(until.timestamp(), HOUR)} UTC"


@dataclass(frozen=True)
class Monitor:
    """What the page and ``monitor.json`` show of one model for one period."""

    model: str
    since: datetime
    until: datetime
    logged_rows: int
    reference: dict[str, Any] | None  # {rows, source[, problem]} or None
    hint: str  # how to add a reference sample, or why the one there cannot be used
    log_off: bool
    columns: tuple[drift.ColumnDrift, ...]
    # the log's counts since winserve started: written, dropped (queue full), lost (disk),
    # error (why it is not written now); the owner's page, so the path in an error is shown
    log_status: dict[str, object] | None = None
    # requests, errors, latency and predictions per hour or day (predlog/summary.py), and
    # the loads and restarts (predlog/events.py); None and () with the log off
    activity: summary.Summary | None = None
    events: tuple[events.ModelEvent, ...] = ()
    ongoing: bool = True  # the period ends now (not a chosen past one): "since …"
    sampled_every: int = 1  # drift read one logged request in this many (a busy period)

    @property
    def period(self) -> str:
        return period_words(self.since, self.until, self.ongoing)

    @property
    def summary(self) -> str:
        """One sentence on top (issue 26): how many inputs drifted and which, or that none
        did, or that nothing was logged."""
        if self.log_off:
            return ""
        requests = self.activity.requests if self.activity is not None else 0
        if not self.logged_rows and not requests:
            return f"No requests logged {self.period}."
        if not self.columns:
            return (
                f"{counted(requests, 'request')} {self.period}; no reference sample to compare "
                "their inputs with."
            )
        if not self.logged_rows:
            return f"No inputs were logged {self.period} (setting: log_inputs)."
        return drifted(self.columns, self.period) + "."

    def charts(self) -> dict[str, Markup]:
        """The page's pictures (web/monitor_charts.py), each titled with what it shows; the
        page puts their numbers beside them in tables."""
        found: dict[str, Markup] = {}
        activity = self.activity
        if activity is not None and activity.requests:
            size, buckets = activity.bucket_seconds, activity.buckets
            per = PER.get(size, "week")
            errors = sum(b.errors for b in buckets)
            found["requests"] = Markup(
                requests_chart(
                    buckets,
                    size,
                    f"Requests per {per} {self.period}: {activity.requests} in all, "
                    f"{errors} answered with an error",
                )
            )
            found["latency"] = Markup(
                latency_chart(
                    buckets,
                    size,
                    f"Latency per {per} in milliseconds, median and 95th percentile "
                    f"(over the period: {_ms(activity.p50_ms)} and {_ms(activity.p95_ms)})",
                )
            )
        if activity is not None and any(p.rows for p in activity.predictions):
            size = activity.bucket_seconds
            per = PER.get(size, "week")
            if activity.classifier:
                found["predictions"] = Markup(
                    shares_chart(
                        activity.predictions,
                        activity.classes,
                        size,
                        f"Share of each answer per {per}: {', '.join(activity.classes)}",
                    )
                )
            else:
                found["predictions"] = Markup(
                    values_chart(
                        activity.predictions,
                        size,
                        f"Answers per {per}: median, and the 5th to 95th percentile",
                    )
                )
        if self.events:
            found["timeline"] = Markup(
                timeline(
                    self.events,
                    self.since.timestamp(),
                    self.until.timestamp(),
                    f"{happenings(len(self.events))} {self.period}, numbered as in the list below",
                )
            )
        for c in self.columns:
            if c.logged_rows:
                found[f"input {c.name}"] = Markup(
                    histogram_pair(
                        c,
                        f"{c.name}: share of rows per bin in the reference sample and in this "
                        f"period (PSI {c.psi:.3f}, {c.words})"
                        if c.psi is not None
                        else f"{c.name}: share of rows per bin",
                    )
                )
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "logged_rows": self.logged_rows,
            "sampled_every": self.sampled_every,
            "reference": self.reference,
            "hint": self.hint,
            "log": not self.log_off,
            "log_status": self.log_status,
            "summary": self.summary,
            "columns": [c.as_dict() for c in self.columns],
            "activity": self.activity.as_dict() if self.activity is not None else None,
            "events": [e.as_dict() for e in self.events],
        }


def counted(n: int, one: str, many: str = "") -> str:
    """``1 request``, ``2 requests``: the monitor's counts agree with their nouns (issue 26:
    the page said "1 loads, restarts and failures")."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def happenings(n: int) -> str:
    """``1 load, restart or failure``, ``3 loads, restarts and failures``."""
    return f"{n} " + ("load, restart or failure" if n == 1 else "loads, restarts and failures")


def drifted(columns: tuple[drift.ColumnDrift, ...], period: str = "") -> str:
    """How many inputs drifted and which (``1 of 4 inputs has drifted since …: spend ↑``), or
    that none did; the monitor's sentence, and a folder's index's line per model."""
    within = f" {period}" if period else ""
    arrows = {"up": " ↑", "down": " ↓"}
    shifted = [c.name + arrows.get(c.direction, "") for c in columns if c.words == "shifted"]
    moderate = [c.name + arrows.get(c.direction, "") for c in columns if c.words == "moderate"]
    if shifted:
        verb = "has" if len(shifted) == 1 else "have"
        said = f"{len(shifted)} of {counted(len(columns), 'input')} {verb} drifted{within}: "
        said += ", ".join(shifted)
    else:
        said = f"No input has drifted{within}"
    if moderate:
        said += f"; {len(moderate)} moved moderately: {', '.join(moderate)}"
    return said


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def clock(seconds: float) -> str:
    """``Mon 7 Dec 14:05:33``: an event's moment, to the second."""
    return f"{long_label(seconds, DAY)} {datetime.fromtimestamp(seconds, UTC):%H:%M:%S}"

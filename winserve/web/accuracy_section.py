"""The monitor page's accuracy section (issue 26): the outcomes uploaded for the model a
request names, joined with the predictions of a period, scored per version and week.

::

    monitor page / monitor.json (web/monitor.py) ─► accuracy()
        held.held(): the model, its info (a regressor?) and the version serving
        since/until (?since=, ?until=; default: the days the log keeps)
        predlog.outcomes.joined(the log's file, …) ─► Outcomes (the join made at upload)
        accuracy.scores ─► Accuracy: its figures, a hint, chart() (web/accuracy_chart.py),
                           as_dict() for monitor.json

The outcomes come in through ``POST /outcomes`` (web/outcomes.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from markupsafe import Markup

from winserve.model_info import ModelInfo
from winserve.predlog import accuracy as metrics
from winserve.predlog import outcomes as store
from winserve.predlog.outcome_matches import version_label
from winserve.predlog.writer import PredictionLog
from winserve.web import accuracy_chart, held
from winserve.web.prediction_log import KEY, _moment

HOW = (
    "Upload a CSV file or a workbook of outcomes: a 'request id' column (as in scored "
    "files and the X-Request-Id header) or a key column that is one of the model's inputs, "
    "and an 'outcome' column."
)


def regressor(info: ModelInfo, joined: tuple[metrics.Joined, ...] = ()) -> bool:
    """MAE and RMSE rather than accuracy: a regressor, or a model that does not say, whose
    outcomes are all numbers and some prediction is not a whole number."""
    if info.task in ("regression", "classification"):
        return info.task == "regression"
    return (
        bool(joined)
        and all(
            metrics.number(j.outcome) is not None
            and isinstance(j.prediction, int | float)
            and not isinstance(j.prediction, bool)
            for j in joined
        )
        and any(isinstance(j.prediction, float) and not j.prediction.is_integer() for j in joined)
    )


@dataclass(frozen=True)
class Accuracy:
    """The monitor page's accuracy section: one model, one period."""

    model: str
    kind: str  # "classifier" or "regressor"
    since: datetime
    until: datetime
    stored: int
    joined: int
    unmatched: int
    examples: tuple[str, ...]
    scores: tuple[metrics.Score, ...]
    hint: str
    serving: str  # the label of the version serving now

    def chart(self) -> Markup:
        """The weeks' accuracy (or MAE) per version as a picture (web/accuracy_chart.py);
        empty without a weekly score. The table beside it has every figure."""
        regressor = self.kind == "regressor"
        what = "Mean absolute error (lower is better)" if regressor else "Accuracy"
        title = f"{what} per week of the predictions with a known outcome, one line per version"
        return Markup(accuracy_chart.chart(self.scores, regressor, title))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "outcomes": self.stored,
            "joined_rows": self.joined,
            "unmatched": self.unmatched,
            "unmatched_examples": list(self.examples),
            "serving": self.serving,
            "hint": self.hint,
            "scores": [s.as_dict() for s in self.scores],
        }


def accuracy() -> Accuracy:
    """The accuracy of the model this request names, over ``since``…``until`` (default:
    the days the log keeps), from the outcomes uploaded."""
    model = held.held()
    info = model.info()
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    now = datetime.now(UTC)
    days = plog.days if plog is not None else 30
    until = _moment("until", now)
    since = _moment("since", datetime.fromtimestamp(now.timestamp() - days * 86_400, UTC))
    serving = version_label(model.version, model.sha256 or None)
    if plog is None:
        hint = "The prediction log is off (setting: log): outcomes have no predictions to join."
        return Accuracy(model.name, "", since, until, 0, 0, 0, (), (), hint, serving)
    found = store.joined(plog.path, model.name, since.timestamp(), until.timestamp())
    is_regressor = regressor(info, found.joined)
    hint = "" if found.stored else HOW
    if found.stored and not found.joined:
        hint = "No outcome uploaded matches a prediction logged in this period."
    return Accuracy(
        model.name,
        "regressor" if is_regressor else "classifier",
        since,
        until,
        found.stored,
        len(found.joined),
        found.unmatched,
        found.examples,
        tuple(metrics.scores(found.joined, is_regressor)),
        hint,
        serving,
    )

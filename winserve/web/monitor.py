"""The monitor page (issue 26): for a period (the last week unless asked), the requests,
errors, latency and answers per hour or day, the loads and restarts, and per input the drift
of the inputs the prediction log kept against the model's reference sample; the owner's, as
``/log.csv`` is. A folder of several models without a default has an index at ``/monitor``
(web/monitor_index.py): each model's requests, its drift in a line, and its monitor's link.

::

    GET /monitor[.json]?since=…&until=…  (and /models/<name>/monitor[.json])
        held model ─► monitor_drift.drift_of (reference sample vs logged inputs) ─┐
        prediction log (SQLite, read-only) ─► summary.summarize_file (SQL)        │
                                           ─► events.read_file                    │
                                                  │                               ▼
        monitor.html ◄─ monitor_view.Monitor (sentence, charts, as_dict) ◄────────┘

    GET /monitor[.json] in a folder of models ─► monitor_index.index ─► monitor_index.html

The page is for people: its errors (a refused caller, a date that is not one) are a page too,
as the model page's are (web/page.py); ``monitor.json`` answers in the native error shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue

from winserve.errors import WinserveError
from winserve.model_info import ModelInfo
from winserve.predlog import callers, drift, events, summary
from winserve.predlog.writer import PredictionLog
from winserve.web import accuracy_section, auth, held, monitor_index, paths
from winserve.web.monitor_charts import long_label
from winserve.web.monitor_drift import drift_of
from winserve.web.monitor_view import Monitor, clock, counted, iso
from winserve.web.prediction_log import KEY, _moment, owner_only

bp = Blueprint("monitor", __name__)  # monitor.json: for programs, in /openapi.json
page_bp = Blueprint("monitor_page", __name__)  # the page: for people, as the ui blueprint's
DEFAULT_DAYS = 7  # the period shown when none is asked for: the last week
ONGOING = 300.0  # s: a period ending this close to now is "since …", not "from … to …"


def period() -> tuple[datetime, datetime, bool]:
    """The period this request asks for (default: the last week), and whether it is ongoing
    (ends now)."""
    now = datetime.now(UTC)
    until = _moment("until", now)
    since = _moment("since", datetime.fromtimestamp(now.timestamp() - DEFAULT_DAYS * 86_400, UTC))
    return since, until, abs(until.timestamp() - now.timestamp()) < ONGOING


def monitor() -> Monitor:
    """The monitor of the model this request names (404 for one not served)."""
    model = held.held()
    info = model.info()
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    since, until, ongoing = period()
    found = drift_of(model, info, plog, since.timestamp(), until.timestamp())
    status = plog.status().to_dict() if plog is not None else None
    activity: summary.Summary | None = None
    happened: tuple[events.ModelEvent, ...] = ()
    if plog is not None:
        activity = summary.summarize_file(
            plog.path, model.name, since.timestamp(), until.timestamp(), classifier=_labels(info)
        )
        happened = tuple(
            events.read_file(plog.path, model.name, since.timestamp(), until.timestamp())
        )
    return Monitor(
        model.name,
        since,
        until,
        found.logged_rows,
        found.reference,
        found.hint,
        plog is None,
        found.columns,
        status,
        activity,
        happened,
        ongoing,
        found.every,
    )


def _labels(info: ModelInfo) -> bool:
    """Whether the model answers with labels (shares per class), not numbers (percentiles)."""
    if info.task in ("classification", "clustering", "outlier_detection"):
        return True
    return info.task == "unknown" and bool(info.classes)


@page_bp.context_processor
def _formats() -> dict[str, Any]:
    """What the monitor's template names its buckets and events with."""
    return {"bucket_label": long_label, "iso": iso, "clock": clock, "counted": counted}


@page_bp.app_context_processor
def _monitor_link() -> dict[str, Any]:
    """Whether the pages' navigation links the monitor: for an owner only (a user token's
    caller would be refused it; issue 26, a new user found no link to it at all)."""
    return {"monitor_link": auth.caller().is_owner}


@page_bp.errorhandler(WinserveError)
def page_error(error: WinserveError) -> ResponseReturnValue:
    """The monitor page's errors are a page, as the model page's are (web/page.py): a user
    token's caller logged in on the page read a 403 as raw JSON (issue 26)."""
    page = render_template(
        "message.html", title="The monitor cannot be shown", message=paths.public(error.message)
    )
    response = Response(page, status=error.status, mimetype="text/html")
    response.headers.update(error.headers)
    return response


@page_bp.get("/monitor")
def monitor_page() -> ResponseReturnValue:
    """The monitor page: the owner's (this computer, or whoever holds the token)."""
    owner_only()
    if monitor_index.is_index():  # a folder of several models: the index (issue 26)
        found_index = monitor_index.index(*period())
        # models: base.html's navigation as on the list of models (no one model's API)
        return render_template("monitor_index.html", index=found_index, models=found_index.models)
    found = monitor()
    return render_template(
        "monitor.html",
        monitor=found,
        stable=drift.STABLE,
        shifted=drift.SHIFTED,
        accuracy=accuracy_section.accuracy(),  # of the outcomes uploaded (POST /outcomes)
        callers=_callers(found),  # who used it (predlog/callers.py)
    )


@bp.get("/monitor.json")
def monitor_json() -> ResponseReturnValue:
    """The monitor page's data as JSON (a folder of several models: the index's)."""
    owner_only()
    if monitor_index.is_index():
        return jsonify(monitor_index.index(*period()).as_dict())
    found = monitor()
    return jsonify(
        {
            **found.as_dict(),
            "accuracy": accuracy_section.accuracy().as_dict(),
            "callers": [c.as_dict() for c in _callers(found)],
        }
    )


def _callers(found: Monitor) -> list[callers.CallerUse]:
    """Who used the model in the monitor's period, busiest first (issue 26)."""
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    if plog is None:
        return []
    return callers.used_file(
        plog.path, found.model, found.since.timestamp(), found.until.timestamp()
    )


def install(app: Flask) -> None:
    """``/monitor`` for the default model and ``/models/<name>/monitor`` for each."""
    for blueprint in (bp, page_bp):
        app.register_blueprint(blueprint)
        app.register_blueprint(
            blueprint, url_prefix="/models/<model>", name=f"{blueprint.name}_model"
        )

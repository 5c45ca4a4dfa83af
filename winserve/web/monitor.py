"""The monitor page (issue 26): for a period (the last week unless asked), the requests,
errors, latency and answers per hour or day, the loads and restarts, and per input the drift
of the inputs the prediction log kept against the model's reference sample; the owner's, as
``/log.csv`` is.

::

    GET /monitor[.json]?since=…&until=…  (and /models/<name>/monitor[.json])
        held model ─► its file (info.source) or the card's ``reference`` ─► reference.read
                      (cached by path, size and mtime)                         │ frame
        prediction log (SQLite, read-only) ─► drift.logged_sample ───────────► drift.drift
                                           ─► summary.summarize_file (SQL)      │
                                           ─► events.read_file                  │
                                                  │                             ▼
        monitor.html ◄─ monitor_view.Monitor (sentence, charts, as_dict) ◄──────┘

The web process reads the reference file itself, with the model host's own reader
(``winserve.host.reference.read``: the same columns, number conversion and fixed-seed
sample), rather than asking the model host for it: the frame is needed only here, a
page read by the owner now and then, and shipping 2,000 rows through the host's pipe would
add a method to every backend for no gain. The file read is the one the model host read:
the card's ``reference``, else ``<name>.reference.csv``/``.parquet`` beside the file loaded
(``info.source``: the loader's private copy, made with its reference sample at load,
models/loader.py), so a sample edited after the load is not compared until the model is.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue

from winserve.explaining import reference_of
from winserve.host import reference as reference_sample
from winserve.model_info import ModelInfo
from winserve.predlog import callers, drift, events, summary
from winserve.predlog.writer import PredictionLog
from winserve.web import held, outcomes
from winserve.web.monitor_charts import long_label
from winserve.web.monitor_view import Monitor, clock, iso
from winserve.web.prediction_log import KEY, _moment, _owner

bp = Blueprint("monitor", __name__)  # monitor.json: for programs, in /openapi.json
page_bp = Blueprint("monitor_page", __name__)  # the page: for people, as the ui blueprint's
DEFAULT_DAYS = 7  # the period shown when none is asked for: the last week
ONGOING = 300.0  # s: a period ending this close to now is "since …", not "from … to …"

_cache: dict[tuple[str, int, int], dict[str, list[Any]]] = {}
_cache_lock = threading.Lock()


def _reference_path(info: ModelInfo, named: str) -> Path | None:
    if named:
        return Path(named)
    if not info.source or not info.sha256:  # the built-in demo: no file
        return None
    found = reference_sample.beside(Path(info.source))
    return found[0] if found else None


def _reference_columns(path: Path, info: ModelInfo) -> dict[str, list[Any]]:
    """The reference sample's columns as lists, read once per version of the file."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        found = _cache.get(key)
    if found is None:
        features = [{"name": f.name, "kind": f.kind} for f in info.features]
        frame = reference_sample.read(path, features)
        found = {str(c): frame[c].tolist() for c in frame.columns}
        with _cache_lock:
            _cache.clear()  # one model's sample at a time is enough for an owner's page
            _cache[key] = found
    return found


def monitor() -> Monitor:
    """The monitor of the model this request names (404 for one not served)."""
    model = held.held()
    info = model.info()
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    now = datetime.now(UTC)
    until = _moment("until", now)
    since = _moment("since", datetime.fromtimestamp(now.timestamp() - DEFAULT_DAYS * 86_400, UTC))
    described = reference_of(info)
    source = info.source if info.sha256 else ""
    hint = ""
    columns: tuple[drift.ColumnDrift, ...] = ()
    logged_rows = 0
    every = 1  # one logged request in ``every`` read for drift (drift.SAMPLE_REQUESTS)
    if info.tensor_inputs:  # no sample would help (issue 24)
        takes = [str(f.kind) for f in info.features]
        hint = reference_sample.not_a_table(takes, "Drift against a reference sample covers")
    elif described is None:
        hint = "This model has no reference sample to compare with: " + (
            reference_sample.how_to_make(source)
        )
    elif described.get("problem"):
        hint = str(described["problem"])
    else:
        path = _reference_path(info, model.card.reference)
        if path is None or not path.is_file():
            hint = "The reference sample is gone: " + reference_sample.how_to_make(source)
        else:
            try:
                ref = _reference_columns(path, info)
            except (ValueError, OSError) as exc:
                hint = f"{path.name} cannot be used: {exc}"
            else:
                logged: dict[str, list[Any]] = {}
                if plog is not None:
                    logged, logged_rows, every = drift.logged_sample(
                        plog.path, model.name, since.timestamp(), until.timestamp(), list(ref)
                    )
                kinds = {f.name: str(f.kind) for f in info.features}
                columns = tuple(drift.drift(ref, logged, kinds))
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
        logged_rows,
        described,
        hint,
        plog is None,
        columns,
        status,
        activity,
        happened,
        abs(until.timestamp() - now.timestamp()) < ONGOING,
        every,
    )


def _labels(info: ModelInfo) -> bool:
    """Whether the model answers with labels (shares per class), not numbers (percentiles)."""
    if info.task in ("classification", "clustering", "outlier_detection"):
        return True
    return info.task == "unknown" and bool(info.classes)


@page_bp.context_processor
def _formats() -> dict[str, Any]:
    """What the monitor's template names its buckets and events with."""
    return {"bucket_label": long_label, "iso": iso, "clock": clock}


@page_bp.get("/monitor")
def monitor_page() -> ResponseReturnValue:
    """The monitor page: the owner's (this computer, or whoever holds the token)."""
    _owner()
    found = monitor()
    return render_template(
        "monitor.html",
        monitor=found,
        stable=drift.STABLE,
        shifted=drift.SHIFTED,
        accuracy=outcomes.accuracy(),  # the outcomes uploaded (web/outcomes.py)
        callers=_callers(found),  # who used it (predlog/callers.py)
    )


@bp.get("/monitor.json")
def monitor_json() -> ResponseReturnValue:
    """The monitor page's data as JSON."""
    _owner()
    found = monitor()
    return jsonify(
        {
            **found.as_dict(),
            "accuracy": outcomes.accuracy().as_dict(),
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

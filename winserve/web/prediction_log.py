"""The prediction log seen from the web (issue 26): one entry per prediction request, handed to
the writer's queue after the response is made; the log's counters in ``/metrics``; and
``GET /models/<name>/log.csv`` (and ``/log.csv`` for the default model), the owner's export.

::

    view: decode → service.predict ──► environ[PREDICTED] = (request, info, prediction)
                                       (the native API: Predicted, with the body's bytes)
    after_request (every route; only prediction routes make entries):
        Entry(time, id, model, version, route, caller, latency, status, rows, refs)
          └─► PredictionLog.put  (a tuple of plain values, queued; full: counted, dropped;
                                  winserve/predlog/writer.py)

The views only keep references (no copies, no JSON). The native API's entry holds the body and
the answer as their bytes (up to RAW_MAX each), which the writer process reads the rows from
(record.replayed): nothing is walked or copied on the request thread (~5-7 µs of its CPU a
request, where building the Record cost 13-16 µs; issue 29). Other routes, and larger bodies,
keep at most 100 rows as plain values, picked here (record.record_of). The JSON and SQLite
work is the writer process's. A request refused before it predicted (a 400, a 503) is logged
without rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from flask import Blueprint, Flask, Response, current_app, request, stream_with_context
from flask.typing import ResponseReturnValue
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from winserve.dataplane import Held
from winserve.errors import BadRequest
from winserve.model_info import ModelInfo
from winserve.predlog import export
from winserve.predlog.store import Entry
from winserve.predlog.writer import PredictionLog
from winserve.web import auth, held, observe

KEY = "winserve.prediction_log"
# where a view leaves (decoded request, model description, prediction) for the log
PREDICTED = "winserve.predicted"
# routes that predict: logged even when they fail before predicting (MCP: its tool calls only)
PREDICTION_ENDPOINTS = frozenset(
    {
        "native.predict",
        "native_model.predict",
        "mlflow.invocations",
        "mlflow_model.invocations",
        "oip.infer",
        "ui.predict_form",
        "ui_model.predict_form",
    }
)

# The native API's requests and answers up to this size go to the log as their bytes (the
# writer process reads the rows from them); a larger one is sampled here (record.py), as a
# Record of at most MAX_ROWS_STORED rows, which is about this size too: the queue's memory
# stays bounded by its length either way
RAW_MAX = 64 * 1024
NAMES_CACHED = 64  # models' descriptions whose input names are kept as a tuple

bp = Blueprint("prediction_log", __name__)


class Predicted(NamedTuple):
    """What the native API's view leaves for the log: the decoded request, the description
    it was checked against, the prediction, the model version held, and the JSON body as
    sent (None for an upload)."""

    request: Any
    info: ModelInfo
    prediction: Any
    model: Held
    body: bytes | None


class LogMetrics:
    """The log's counters for ``/metrics``, read at scrape time."""

    def __init__(self, plog: PredictionLog) -> None:
        self._plog = plog

    def collect(self) -> Iterator[Metric]:
        status = self._plog.status()
        written = CounterMetricFamily(
            "winserve_prediction_log_written", "Prediction log entries written to its file."
        )
        written.add_metric((), status.written)
        dropped = CounterMetricFamily(
            "winserve_prediction_log_dropped",
            "Prediction log entries not written: the queue was full (queue_full) or the disk "
            "refused them (disk_error).",
            labels=("reason",),
        )
        dropped.add_metric(("queue_full",), status.dropped)
        dropped.add_metric(("disk_error",), status.lost)
        yield written
        yield dropped


def install(app: Flask, plog: PredictionLog | None) -> None:
    """Log ``app``'s prediction requests to ``plog`` (None: the log is off)."""
    app.register_blueprint(bp)
    app.register_blueprint(bp, url_prefix="/models/<model>", name="prediction_log_model")
    if plog is None:
        return
    app.extensions[KEY] = plog
    app.extensions["winserve.metrics"].register(LogMetrics(plog))
    put = plog.put
    extensions = app.extensions  # auth.install adds its token book after this
    caller_of = auth.caller_of  # who called (issue 26), to the log's token_name
    # a description's input names as a tuple (what the log numbers), made once per model
    # version, not per request
    names_of: dict[int, tuple[ModelInfo, tuple[str, ...]]] = {}

    def input_names(info: ModelInfo) -> tuple[str, ...]:
        found = names_of.get(id(info))
        if found is None or found[0] is not info:
            if len(names_of) >= NAMES_CACHED:
                names_of.clear()
            found = names_of[id(info)] = (info, tuple(info.feature_names))
        return found[1]

    @app.after_request
    def log_prediction(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        environ = req.environ
        predicted = environ.get(PREDICTED)
        if predicted is None and req.endpoint not in PREDICTION_ENDPOINTS:
            return response
        now = time.perf_counter()
        if type(predicted) is Predicted and predicted.body is not None:
            # the native API: the body and the answer as their bytes, nothing walked here
            # (issue 29: building the Record cost this thread ~15 µs of CPU a request)
            answer = response.response
            body = predicted.body
            if (
                type(answer) is list
                and len(answer) == 1
                and len(answer[0]) <= RAW_MAX
                and len(body) <= RAW_MAX
            ):
                used = predicted.model
                put(
                    Entry(
                        time.time(),
                        environ.get(observe.REQUEST_ID, "-"),
                        used.name,
                        used.version,
                        used.sha256 or None,
                        req.url_rule.rule,
                        environ["REQUEST_METHOD"],
                        environ.get("REMOTE_ADDR"),
                        (now - environ.get(observe.STARTED, now)) * 1000,
                        response.status_code,
                        environ.get("winserve.rows"),
                        body,
                        input_names(predicted.info),
                        answer[0],
                        caller_of(environ, auth.TOKENS in extensions).name,
                    )
                )
                return response
        model = held.first_held()
        decoded, info, prediction = predicted[:3] if predicted is not None else (None,) * 3
        rule = req.url_rule
        put(
            Entry(
                time.time(),
                environ.get(observe.REQUEST_ID, "-"),
                model.name if model is not None else held.model_used(),
                model.version if model is not None else None,
                (model.sha256 or None) if model is not None else None,
                rule.rule if rule is not None else "unmatched",
                environ["REQUEST_METHOD"],
                environ.get("REMOTE_ADDR"),
                (now - environ.get(observe.STARTED, now)) * 1000,
                response.status_code,
                environ.get("winserve.rows"),
                decoded,
                info.feature_names if info is not None else None,
                prediction,
                caller_of(environ, auth.TOKENS in extensions).name,
            )
        )
        return response


def _moment(name: str, default: datetime) -> datetime:
    text = request.args.get(name)
    if not text:
        return default
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name}={text[:40]!r} is not a date or time; expected ISO 8601, for example "
            "2026-12-01 or 2026-12-01T09:30 (UTC unless an offset is given)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def owner_only() -> None:
    """The owner's only (``auth.require_owner``; issue 26): the log holds what colleagues
    sent. The log's export here and the monitor pages ask it."""
    auth.require_owner("the prediction log")


@bp.get("/log.csv")
def log_csv() -> ResponseReturnValue:
    """The log of this model from ``since`` to ``until`` as CSV: the owner's (this computer,
    or whoever holds the token)."""
    owner_only()
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    if plog is None:
        raise BadRequest("the prediction log is off (setting: log)")
    # a folder of several models, none the default: every model's log (issue 26)
    every = held.model_name() is None and not held.plane().names_a_model()
    name = None if every else held.held().name  # 404 for a model not served
    now = datetime.now(UTC)
    until = _moment("until", now)
    since = _moment("since", datetime.fromtimestamp(now.timestamp() - plog.days * 86_400, UTC))
    lines = export.csv_lines(plog.path, name, since.timestamp(), until.timestamp())
    stamp = now.strftime("%Y%m%d-%H%M%S")
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name or "models"}-log-{stamp}.csv"'
        },
    )

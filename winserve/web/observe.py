"""What happened to each request: the request id, the access log line (request id, caller,
method, path, status, rows, milliseconds), the optional JSON-lines request log, and the
Prometheus metrics served at ``GET /metrics``."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from winserve import __version__, metrics
from winserve.dataplane import DataPlane
from winserve.web import auth, held

access_log = logging.getLogger("winserve.access")
# What a label may hold (issue 28, finding 2: a series per made-up model name or method grew
# /metrics to 107 MB in 3,500 requests): the methods HTTP defines and the models served; any
# other name a client sends counts under this one label.
OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"})
# A path is written to the console as sent, but never a line break or another control
# character: an encoded %0A would forge a log line of its own (issue 28)
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_LOG_MAX_BYTES = 50 * 1024 * 1024
# this request's id and start, kept in its WSGI environ: one lookup of the request for both
# hooks, where flask.g cost one per value (issue 14)
REQUEST_ID = "winserve.request_id"
STARTED = "winserve.started"

bp = Blueprint("observe", __name__)


class RequestIds:
    """Request ids of 16 hex digits (more past 4 billion requests): a random prefix per app
    and a count, so unique within a run and, by the prefix, between runs. uuid4 per request
    cost ~4.5 us, this ~0.7 (issue 14); ``next`` of ``itertools.count`` is atomic (it runs
    in C, under the GIL), so threads never share an id."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._count):08x}"


def log_safe(text: str) -> str:
    """``text`` for one console line: control characters shown as escapes (``\\x0a``)."""
    return text if text.isprintable() else text.translate(_CONTROL)


def request_id() -> str:
    """This request's id ("-" before one was given)."""
    found: str = request.environ.get(REQUEST_ID, "-")
    return found


class RequestLog:
    """One JSON object per line, appended; shared by every waitress thread. The file is opened
    for each line, so it can be moved or deleted while winserve runs (also on Windows). A
    winserve left running for months must not fill the disk: past ``max_bytes`` the file
    becomes ``FILE.1`` (replacing the previous one) and a new file starts."""

    def __init__(self, path: Path, max_bytes: int = REQUEST_LOG_MAX_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def write(self, record: dict[str, object]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            with self._path.open("a", encoding="utf-8") as file:
                file.write(line)
                full = file.tell() >= self._max_bytes
            if full:
                # Windows refuses while another program holds the file open: try again later
                with contextlib.suppress(OSError):
                    os.replace(self._path, self._path.with_name(self._path.name + ".1"))


class RequestMetrics:
    """What the requests did, counted by prometheus_client. Each distinct label set's series
    (its "child") is looked up once and kept: ``labels()`` checks and copies its arguments on
    every call, which cost more than the three updates themselves (~7 µs against ~3 µs per
    request, measured)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "winserve_requests",
            "HTTP requests by endpoint (route), method and status.",
            ("endpoint", "method", "status", "model"),
            registry=None,
        )
        self.latency = Histogram(
            "winserve_request_duration_seconds",
            "Time from request to response, by endpoint (route).",
            ("endpoint", "model"),
            buckets=metrics.LATENCY_BUCKETS,
            registry=None,
        )
        self.rows = Counter(
            "winserve_rows",
            "Rows received for prediction, by endpoint.",
            ("endpoint", "model"),
            registry=None,
        )
        # bounded like the label sets: route templates × methods × statuses × models
        self._series: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        self._rows: dict[tuple[str, str], Counter] = {}
        self._served: set[str] = set()  # names found served once: no registry lookup again

    def model_label(self, name: str, models: DataPlane) -> str:
        """``name`` if a model of that name is (or was) served here, else ``other``."""
        if not name or name in self._served:
            return name
        if name in models.names():
            self._served.add(name)
            return name
        return OTHER

    def record(
        self, route: str, method: str, status: str, model: str, seconds: float, rows: int | None
    ) -> None:
        if method not in KNOWN_METHODS:
            method = OTHER
        key = (route, method, status, model)
        series = self._series.get(key)
        if series is None:  # two threads may both get here: labels() hands both the same child
            series = self._series[key] = (
                self.requests.labels(route, method, status, model),
                self.latency.labels(route, model),
            )
        series[0].inc()
        series[1].observe(seconds)
        if rows:  # a series only for an endpoint that received rows, as before
            counted = self._rows.get((route, model))
            if counted is None:
                counted = self._rows[route, model] = self.rows.labels(route, model)
            counted.inc(rows)


class ServingMetrics:
    """The collector ``/metrics`` reads: the request metrics, and every model's state read at
    scrape time from the data plane's one health summary (queue depth, replicas, version)."""

    def __init__(self, recorded: RequestMetrics, models: DataPlane) -> None:
        self._recorded = recorded
        self._models = models

    def collect(self) -> Iterator[Metric]:
        """Every model's series carry its name (label ``model``), and the version serving it."""
        info = GaugeMetricFamily("winserve_info", "winserve version.", labels=("version",))
        info.add_metric((__version__,), 1.0)
        yield info
        recorded = self._recorded
        yield from metrics.without_created(
            [*recorded.requests.collect(), *recorded.latency.collect(), *recorded.rows.collect()]
        )
        summary = self._models.health()
        yield metrics.labelled(
            metrics.BATCH_ROWS,
            metrics.BATCH_ROWS_HELP,
            "histogram",
            [({"model": name}, rows) for name, rows in self._models.batch_rows()],
        )

        def gauge(name: str, help_text: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_text, labels=("model", *labels))

        queue = gauge("winserve_queue_depth", "Requests waiting for a model replica.")
        ready = gauge("winserve_ready", "1 while the model is serving (ready or degraded).")
        version = gauge(
            "winserve_model_version",
            "The version of the model serving now (1, 2, … as the file is reloaded).",
        )
        replica_ready = gauge(
            "winserve_replica_ready", "1 while this model replica is ready.", "replica"
        )
        restarts = CounterMetricFamily(
            "winserve_replica_restarts",
            "Times this model replica was restarted.",
            labels=("model", "replica"),
        )
        load = gauge(
            "winserve_model_load_seconds",
            "Seconds the last model load took, per replica.",
            "replica",
        )
        for model in summary.models:
            health = model.health
            if health is None or model.version is None:  # loading, or its load failed
                ready.add_metric((model.name,), 0.0)
                continue
            queue.add_metric((model.name,), health.queue_depth)
            ready.add_metric((model.name,), 1.0 if health.serving else 0.0)
            version.add_metric((model.name,), model.version)
            for r in health.replicas:
                replica = (model.name, str(r.replica))
                replica_ready.add_metric(replica, 1.0 if r.state == "ready" else 0.0)
                restarts.add_metric(replica, r.restarts)
                load.add_metric(replica, r.load_seconds)
        yield from (queue, ready, version, replica_ready, restarts, load)


def install(app: Flask, request_log: Path | None) -> None:
    """Request ids, timing, logs and metrics for every request ``app`` answers."""
    recorded = RequestMetrics()
    registry = CollectorRegistry()  # this app's own: several apps may share a process
    models: DataPlane = app.extensions[held.KEY]
    registry.register(ServingMetrics(recorded, models))
    app.extensions["winserve.metrics"] = registry
    log_file = RequestLog(request_log) if request_log else None
    app.register_blueprint(bp)

    ids = RequestIds()
    extensions = app.extensions  # auth.install adds its token book after this

    @app.before_request
    def start() -> None:
        environ = request.environ
        environ[STARTED] = time.perf_counter()
        given = environ.get("HTTP_X_REQUEST_ID")  # the X-Request-Id header
        environ[REQUEST_ID] = given if given and CLIENT_ID.fullmatch(given) else ids.new()

    @app.after_request
    def finish(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        environ = req.environ
        request_id = environ.get(REQUEST_ID, "-")
        response.headers.add("X-Request-Id", request_id)  # added: no view sets it
        seconds = time.perf_counter() - environ.get(STARTED, time.perf_counter())
        rule = req.url_rule
        route = rule.rule if rule is not None else "unmatched"
        rows = environ.get("winserve.rows")
        model = recorded.model_label(held.model_used(), models)
        status = response.status_code
        recorded.record(route, req.method, str(status), model, seconds, rows)
        if access_log.isEnabledFor(logging.INFO):  # its arguments cost more than its check
            access_log.info(
                "%s %s %s %s %d rows=%s %.1fms",
                request_id,
                # who called (issue 26): a token's name, "local" or "-"; a name is letters,
                # digits, _ and - only, so it cannot break the line
                auth.caller_of(environ, auth.TOKENS in extensions).name,
                req.method,
                log_safe(req.path),
                status,
                rows if rows is not None else "-",
                seconds * 1000,
            )
        if log_file is not None:
            log_file.write(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "request_id": request_id,
                    "method": req.method,
                    "endpoint": req.path,
                    "route": route,
                    "status": status,
                    "rows": rows,
                    "latency_ms": round(seconds * 1000, 2),
                    "client": req.remote_addr,
                    "caller": auth.caller_of(environ, auth.TOKENS in extensions).name,
                }
            )
        return response


@bp.get("/metrics")
def metrics_view() -> ResponseReturnValue:
    # always the classic text format (not OpenMetrics, whatever Accept asks): what /metrics
    # has answered since round 1, which every Prometheus version scrapes
    body = generate_latest(current_app.extensions["winserve.metrics"])
    return Response(body, mimetype=None, content_type=METRICS_TYPE)

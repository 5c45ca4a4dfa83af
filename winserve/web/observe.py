"""What happened to each request: the request id, the access log line, the optional JSON-lines
request log, and the Prometheus metrics served at ``GET /metrics``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue

from winserve import __version__, metrics

access_log = logging.getLogger("winserve.access")
CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_LOG_MAX_BYTES = 50 * 1024 * 1024

bp = Blueprint("observe", __name__)


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
    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "winserve_requests", "HTTP requests by endpoint (route), method and status."
        )
        self.latency = metrics.Histogram(
            "winserve_request_duration_seconds",
            "Time from request to response, by endpoint (route).",
            metrics.LATENCY_BUCKETS,
        )
        self.rows = metrics.Counter("winserve_rows", "Rows received for prediction, by endpoint.")


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def install(app: Flask, request_log: Path | None) -> None:
    """Request ids, timing, logs and metrics for every request ``app`` answers."""
    recorded = RequestMetrics()
    app.extensions["winserve.metrics"] = recorded
    log_file = RequestLog(request_log) if request_log else None
    app.register_blueprint(bp)

    @app.before_request
    def start() -> None:
        g.request_started = time.perf_counter()
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if CLIENT_ID.fullmatch(given) else uuid.uuid4().hex[:16]

    @app.after_request
    def finish(response: Response) -> Response:
        request_id = g.get("request_id", "-")
        response.headers["X-Request-Id"] = request_id
        seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
        route = _route()
        rows = request.environ.get("winserve.rows")
        # the model this request used (its slot), else the one its path named, else none
        taken = g.get("winserve_slots") or {}
        model = next(iter(taken.values())).name if taken else (g.get("winserve_model") or "")
        recorded.requests.inc(
            endpoint=route, method=request.method, status=str(response.status_code), model=model
        )
        recorded.latency.observe(seconds, endpoint=route, model=model)
        if rows:
            recorded.rows.inc(rows, endpoint=route, model=model)
        if access_log.isEnabledFor(logging.INFO):  # its arguments cost more than its check
            access_log.info(
                "%s %s %s %d rows=%s %.1fms",
                request_id,
                request.method,
                request.path,
                response.status_code,
                rows if rows is not None else "-",
                seconds * 1000,
            )
        if log_file is not None:
            log_file.write(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "request_id": request_id,
                    "method": request.method,
                    "endpoint": request.path,
                    "route": route,
                    "status": response.status_code,
                    "rows": rows,
                    "latency_ms": round(seconds * 1000, 2),
                    "client": request.remote_addr,
                }
            )
        return response


@bp.get("/metrics")
def metrics_view() -> ResponseReturnValue:
    """Every model's series carry its name (label ``model``), and the version serving it."""
    from winserve.web import slots

    recorded: RequestMetrics = current_app.extensions["winserve.metrics"]
    chosen = slots.registry()
    served = [(e, e.current) for e in chosen.entries()]
    live = [(((("model", e.name),)), slot, slot.health()) for e, slot in served if slot]
    replicas = [
        ((*k, ("replica", str(r.replica))), r) for k, _, health in live for r in health.replicas
    ]
    lines = [
        *metrics.gauge("winserve_info", "winserve version.", [((("version", __version__),), 1.0)]),
        *recorded.requests.render(),
        *recorded.latency.render(),
        *recorded.rows.render(),
        *metrics.histograms(
            "winserve_batch_rows",
            "Rows per model call (after batching).",
            [(k, slot.backend.batch_rows) for k, slot, _ in live],
        ),
        *metrics.gauge(
            "winserve_queue_depth",
            "Requests waiting for a model replica.",
            [(k, float(health.queue_depth)) for k, _, health in live],
        ),
        *metrics.gauge(
            "winserve_ready",
            "1 while the model is serving (ready or degraded).",
            [(k, 1.0 if health.serving else 0.0) for k, _, health in live]
            + [((("model", e.name),), 0.0) for e, slot in served if slot is None],
        ),
        *metrics.gauge(
            "winserve_model_version",
            "The version of the model serving now (1, 2, … as the file is reloaded).",
            [(k, float(slot.version)) for k, slot, _ in live],
        ),
        *metrics.gauge(
            "winserve_replica_ready",
            "1 while this model replica is ready.",
            [(k, 1.0 if r.state == "ready" else 0.0) for k, r in replicas],
        ),
        *metrics.counter_snapshot(
            "winserve_replica_restarts",
            "Times this model replica was restarted.",
            [(k, float(r.restarts)) for k, r in replicas],
        ),
        *metrics.gauge(
            "winserve_model_load_seconds",
            "Seconds the last model load took, per replica.",
            [(k, r.load_seconds) for k, r in replicas],
        ),
    ]
    return Response("\n".join(lines) + "\n", mimetype=None, content_type=METRICS_TYPE)

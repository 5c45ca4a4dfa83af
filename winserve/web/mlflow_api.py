"""MLflow-compatible endpoints: ``POST /invocations``, ``GET /ping``, ``GET /version``.

(``GET /health`` is winserve's own and answers 200 once the model is serving, as MLflow's does.)
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import __version__
from winserve.protocols import mlflow
from winserve.service import Service
from winserve.web.bodies import json_body, raw_text

bp = Blueprint("mlflow", __name__)


@bp.post("/invocations")
def invocations() -> ResponseReturnValue:
    service: Service = current_app.extensions["winserve.service"]
    max_body = current_app.config["WINSERVE_MAX_BODY"]
    kind = mlflow.content_kind(request.mimetype, dict(request.mimetype_params))
    if kind == "json":
        decoded = mlflow.decode_json(json_body(request, max_body))
    else:
        decoded = mlflow.decode_csv(raw_text(request, max_body))
    request.environ["winserve.rows"] = decoded.n_rows
    return jsonify(mlflow.encode(service.predict(decoded).predictions))


@bp.get("/ping")
def ping() -> ResponseReturnValue:
    service: Service = current_app.extensions["winserve.service"]
    serving = service.backend.health().serving
    return Response("\n", status=200 if serving else 503, mimetype="application/json")


@bp.get("/version")
def version() -> ResponseReturnValue:
    return Response(f"winserve {__version__}", mimetype="text/plain")

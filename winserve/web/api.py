"""The native JSON API: ``POST /predict``, ``GET /model``, ``GET /health``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve.protocols import native
from winserve.service import Service
from winserve.web.bodies import flag, json_body

bp = Blueprint("native", __name__)


def _service() -> Service:
    service: Service = current_app.extensions["winserve.service"]
    return service


@bp.post("/predict")
def predict() -> ResponseReturnValue:
    service = _service()
    proba = flag(request.args.get("proba"))
    body = json_body(request, current_app.config["WINSERVE_MAX_BODY"])
    decoded = native.decode(body, proba)
    prediction = service.predict(decoded)
    request.environ["winserve.rows"] = decoded.n_rows
    return jsonify(native.encode(prediction, service.info(), proba))


def public_info(service: Service) -> dict[str, Any]:
    model = service.info()
    info = model.to_dict()
    source = info.pop("source", "")
    info["file"] = source.replace("\\", "/").rsplit("/", 1)[-1] if info.get("sha256") else source
    info.pop("extra", None)
    info["description"] = model.extra.get("description", "")
    info["outputs"] = model.outputs
    return info


@bp.get("/model")
def model() -> ResponseReturnValue:
    return jsonify(public_info(_service()))


@bp.get("/health")
def health() -> ResponseReturnValue:
    state = _service().backend.health()
    return jsonify(state.to_dict()), 200 if state.serving else 503

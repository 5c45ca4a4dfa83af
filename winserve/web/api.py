"""The native JSON API: ``POST /predict``, ``GET /model``, ``GET /health``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve.protocols import native
from winserve.service import Service
from winserve.web import paths
from winserve.web.bodies import flag, json_body

bp = Blueprint("native", __name__)


def _hide(text: str) -> str:
    return paths.hide(text, current_app.extensions.get("winserve.paths"))


def _service() -> Service:
    service: Service = current_app.extensions["winserve.service"]
    return service


@bp.post("/predict")
def predict() -> ResponseReturnValue:
    service = _service()
    proba = flag(request.args.get("proba"))
    scores = flag(request.args.get("scores"))
    body = json_body(request, current_app.config["WINSERVE_MAX_BODY"])
    decoded = native.decode(body, proba)
    decoded.scores = scores
    info = service.info()  # one snapshot of the model's description for this request
    prediction = service.predict(decoded, info)
    request.environ["winserve.rows"] = decoded.n_rows
    return jsonify(native.encode(prediction, info, proba, scores))


def public_info(service: Service) -> dict[str, Any]:
    model = service.info()
    info = model.to_dict()
    source = info.pop("source", "")
    info["file"] = source.replace("\\", "/").rsplit("/", 1)[-1] if info.get("sha256") else source
    info.pop("extra", None)
    info["warnings"] = [_hide(w) for w in info.get("warnings", [])]
    info["description"] = model.extra.get("description", "")
    info["outputs"] = model.outputs
    return info


@bp.get("/model")
def model() -> ResponseReturnValue:
    return jsonify(public_info(_service()))


@bp.get("/health")
def health() -> ResponseReturnValue:
    state = _service().backend.health()
    answer = state.to_dict()
    # open even with a token: a load error's server path (a user name, on Windows) stays out
    if "reason" in answer:
        answer["reason"] = _hide(answer["reason"])
    for replica in answer["replicas"]:
        replica["last_error"] = _hide(replica.get("last_error", ""))
    return jsonify(answer), 200 if state.serving else 503

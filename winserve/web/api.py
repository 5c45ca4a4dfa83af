"""The native JSON API: ``POST /predict`` (``?explain=true``: each row's Shapley values, issue
25), ``POST /whatif``, ``GET /model``, ``GET /health``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import explaining
from winserve.failures import public_reason
from winserve.models.registry import Slot
from winserve.protocols import native
from winserve.web import auth, paths, prediction_log, slots, uploads
from winserve.web.bodies import flag, json_body
from winserve.web.prediction_log import PREDICTED
from winserve.web.responses import json_response

bp = Blueprint("native", __name__)


def _hide(text: str) -> str:
    return paths.hide(text, current_app.extensions.get("winserve.paths"))


@bp.post("/predict")
def predict() -> ResponseReturnValue:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    slot = slots.slot()
    service = slot.service
    proba = scores = explain = False
    if req.environ.get("QUERY_STRING"):  # most calls have none: no query parsing
        proba = flag(req.args.get("proba"))
        scores = flag(req.args.get("scores"))
        explain = flag(req.args.get("explain"))
    if uploads.is_upload(req):  # image files, one field per input (issue 24)
        images = uploads.files(req, current_app.config["WINSERVE_MAX_BODY"])
        decoded = native.from_uploads(images, proba)
    else:
        body = json_body(req, current_app.config["WINSERVE_MAX_BODY"])
        decoded = native.decode(body, proba)
    decoded.scores = scores
    info = service.info()  # one snapshot of the model's description for this request
    if explain:  # 409 saying what file to add, before any model call (issue 25)
        explaining.require_reference(info)
        explaining.check_rows(decoded.n_rows)
    prediction = service.predict(decoded, info)
    req.environ["winserve.rows"] = decoded.n_rows
    req.environ[PREDICTED] = (decoded, info, prediction)  # for the prediction log (issue 26)
    answer = native.encode(prediction, info, proba, scores)
    if explain:
        answer["explanations"] = service.explain(decoded, info)
    response = json_response(answer)
    response.headers.add("X-Model-Version", str(slot.version))  # added: a new response
    return response


def public_info(slot: Slot) -> dict[str, Any]:
    model = slot.info()
    info = model.to_dict()
    source = info.pop("source", "")
    info["file"] = source.replace("\\", "/").rsplit("/", 1)[-1] if info.get("sha256") else source
    info.pop("extra", None)
    info["warnings"] = [_hide(w) for w in info.get("warnings", [])]
    info["description"] = model.extra.get("description", "")
    info["outputs"] = model.outputs
    info["version"] = slot.version
    info["sha256"] = slot.sha256 or info.get("sha256", "")
    if slot.loaded_at:
        info["loaded_at"] = slot.loaded_at
    info["reference"] = explaining.reference_of(model)  # {rows, source} or None (issue 25)
    return info


@bp.post("/whatif")
def whatif() -> ResponseReturnValue:
    """One row's prediction as each input (or each of ``columns``) sweeps its reference
    range (issue 25): ``{"curves": [{column, kind, values, predictions, probabilities?}]}``."""
    slot = slots.slot()
    body = json_body(request, current_app.config["WINSERVE_MAX_BODY"])
    decoded, columns = native.decode_whatif(body)
    response = jsonify(slot.service.whatif(decoded, columns))
    response.headers["X-Model-Version"] = str(slot.version)
    return response


@bp.get("/model")
def model() -> ResponseReturnValue:
    return jsonify(public_info(slots.slot()))


@bp.get("/health")
def health() -> ResponseReturnValue:
    if auth.stranger():  # a token is set and the caller has none: no names (issue 28)
        return _stranger_health()
    # open even with a token: a load error's server path (a user name, on Windows) stays out
    if slots.registry().is_folder and slots.model_name() is None:
        return _folder_health()
    slot = slots.slot()
    answer = _model_health(slot)
    entry = next((e for e in slots.registry().entries() if e.name == slot.name), None)
    if entry is not None and entry.reason:  # a newer file on disk that did not load
        answer["file_problem"] = f"{_hide(entry.reason)} (version {slot.version} keeps serving)"
    _with_log(answer)
    return jsonify(answer), 200 if answer["serving"] else 503


def _with_log(answer: dict[str, Any]) -> None:
    """The prediction log's counts, and why it is not written, if it is not (issue 26)."""
    plog = current_app.extensions.get(prediction_log.KEY)
    if plog is not None:
        status = plog.status().to_dict()
        if "error" in status:  # its path may name the user (Windows): the console has it
            status["error"] = _hide(str(status["error"]))
        answer["prediction_log"] = status


def _stranger_health() -> ResponseReturnValue:
    """Whether the server (or the model the path names, as /v2/models/<name>/ready tells)
    serves, and nothing about its models."""
    if slots.model_name() is not None:  # 404 naming no model when it is not served here
        serving = [slots.slot().health().serving]
    else:
        current = [e.current for e in slots.registry().entries()]
        serving = [slot is not None and slot.health().serving for slot in current]
    status = "ready" if serving and all(serving) else "degraded" if any(serving) else "failed"
    return jsonify({"status": status, "serving": any(serving)}), 200 if any(serving) else 503


def _model_health(slot: Slot) -> dict[str, Any]:
    state = slot.health()
    answer = state.to_dict()
    # one line each, without a library's internals; the console has the full text (issue 22)
    if "reason" in answer:
        answer["reason"] = _hide(public_reason(answer["reason"]))
    for replica in answer["replicas"]:
        replica["last_error"] = _hide(public_reason(replica.get("last_error", "")))
    answer["version"] = slot.version
    answer["serving"] = state.serving
    return answer


def _folder_health() -> ResponseReturnValue:
    """A folder of models: each model's health, and one overall status: ready when every
    model serves, degraded when some do, else failed (or loading while the first loads run)."""
    chosen = slots.registry()
    models: dict[str, Any] = {}
    for entry in chosen.entries():
        slot = entry.current
        answer: dict[str, Any] = (
            _model_health(slot)
            if slot is not None
            else {"status": "loading" if entry.loading else "failed", "serving": False}
        )
        if entry.reason:
            answer["reason"] = _hide(public_reason(entry.reason))  # the file that did not load
        models[entry.name] = answer
    refused = {name: _hide(reason) for name, reason in chosen.refused().items()}
    serving = [m["serving"] for m in models.values()]
    if serving and all(serving) and all(m["status"] == "ready" for m in models.values()):
        status = "ready"
    elif any(serving):
        status = "degraded"
    elif any(m["status"] == "loading" for m in models.values()):
        status = "loading"
    else:
        status = "failed"
    problems = not all(serving) or bool(refused)
    answer = {
        "status": "degraded" if status == "ready" and problems else status,
        "serving": any(serving),
        "models": models,
        "not_served": refused,
    }
    _with_log(answer)
    return jsonify(answer), 200 if any(serving) else 503

"""The native JSON API: ``POST /predict`` (``?explain=true``: each row's Shapley values, issue
25), ``POST /whatif``, ``GET /model``, ``GET /health``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import explaining
from winserve.dataplane import Description, Health, HealthSummary, ModelHealth, SwapCheck
from winserve.failures import public_reason
from winserve.protocols import native
from winserve.web import auth, held, paths, prediction_log, uploads
from winserve.web.bodies import flag, is_upload, json_body, json_body_and_bytes, json_response
from winserve.web.prediction_log import PREDICTED, Predicted

bp = Blueprint("native", __name__)


def _hide(text: str) -> str:
    return paths.hide(text, current_app.extensions.get("winserve.paths"))


@bp.post("/predict")
def predict() -> ResponseReturnValue:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    model = held.held()
    proba = scores = explain = False
    if req.environ.get("QUERY_STRING"):  # most calls have none: no query parsing
        proba = flag(req.args, "proba")
        scores = flag(req.args, "scores")
        explain = flag(req.args, "explain")
    raw = None
    if is_upload(req):  # image files, one field per input (issue 24)
        images = uploads.files(req, current_app.config["WINSERVE_MAX_BODY"])
        decoded = native.from_uploads(images, proba, scores)
    else:
        body, raw = json_body_and_bytes(req, current_app.config["WINSERVE_MAX_BODY"])
        decoded = native.decode(body, proba, scores)
    info = model.info()  # one snapshot of the model's description for this request
    if explain:  # 409 saying what file to add, before any model call (issue 25)
        explaining.require_reference(info)
        explaining.check_rows(decoded.n_rows)
    answer = model.infer(decoded, info)
    prediction = answer.prediction
    req.environ["winserve.rows"] = decoded.n_rows
    # for the prediction log (issue 26), with what it may read the rows from in its own
    # process: the body as sent (issue 29)
    req.environ[PREDICTED] = Predicted(decoded, info, prediction, model, raw)
    encoded = native.encode(prediction, info, proba, scores)
    if explain:
        encoded["explanations"] = model.explain(decoded, info)
    response = json_response(encoded)
    response.headers.add("X-Model-Version", str(answer.version))  # added: a new response
    return response


def public_info(described: Description) -> dict[str, Any]:
    model = described.info
    info = model.to_dict()
    source = info.pop("source", "")
    info["file"] = source.replace("\\", "/").rsplit("/", 1)[-1] if info.get("sha256") else source
    info.pop("extra", None)
    info["warnings"] = [_hide(w) for w in info.get("warnings", [])]
    info["description"] = model.extra.get("description", "")
    info["outputs"] = model.outputs
    info["version"] = described.version
    info["sha256"] = described.sha256 or info.get("sha256", "")
    if described.loaded_at:
        info["loaded_at"] = described.loaded_at
    info["reference"] = explaining.reference_of(model)  # {rows, source} or None (issue 25)
    return info


@bp.post("/whatif")
def whatif() -> ResponseReturnValue:
    """One row's prediction as each input (or each of ``columns``) sweeps its reference
    range (issue 25): ``{"curves": [{column, kind, values, predictions, probabilities?}]}``."""
    model = held.held()
    body = json_body(request, current_app.config["WINSERVE_MAX_BODY"])
    decoded, columns = native.decode_whatif(body)
    response = jsonify(model.whatif(decoded, columns))
    response.headers["X-Model-Version"] = str(model.version)
    return response


@bp.get("/model")
def model() -> ResponseReturnValue:
    return jsonify(public_info(held.plane().description(held.held())))


@bp.get("/health")
def health() -> ResponseReturnValue:
    """The server's health (``/health``), or one model's (``/models/<name>/health``), from
    the data plane's one summary. Strict readiness (issue 23): 503 ``loading`` until every
    model found at start has loaded or failed."""
    if auth.stranger():  # a token is set and the caller has none: no names (issue 28)
        return _stranger_health()
    # open even with a token: a load error's server path (a user name, on Windows) stays out
    plane = held.plane()
    if held.model_name() is not None:  # one model: 404 when it is not served, as before
        model = held.held()
        answer = _model_health(model.health(), model.version, plane.reason(model.name))
        _with_check(answer, plane.swap_check(model.name))
        _with_log(answer)
        return jsonify(answer), 200 if answer["serving"] else 503
    summary = plane.health()
    if summary.folder:
        return _folder_health(summary)
    state = summary.model(summary.default)
    if state is None:  # no model at all (a registry emptied by an unload)
        state = ModelHealth(summary.default or "", summary.status)
    answer = _state_health(state)
    _with_log(answer)
    return jsonify(answer), 200 if summary.ready else 503


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
    if held.model_name() is not None:  # 404 naming no model when it is not served here
        health = held.held().health()
        status, serving, ready = health.status, health.serving, health.serving
    else:
        summary = held.plane().health()
        status, serving, ready = summary.status, summary.serving, summary.ready
    return jsonify({"status": status, "serving": serving}), 200 if ready else 503


def _model_health(state: Health, version: int, reason: str) -> dict[str, Any]:
    """One loaded version's health: its replicas (one line each, without a library's
    internals; the console has the full text, issue 22), and the newer file on disk that
    did not load, if one did not."""
    answer = state.to_dict()
    if "reason" in answer:
        answer["reason"] = _hide(public_reason(answer["reason"]))
    for replica in answer["replicas"]:
        replica["last_error"] = _hide(public_reason(replica.get("last_error", "")))
    answer["version"] = version
    answer["serving"] = state.serving
    if reason:
        answer["file_problem"] = f"{_hide(reason)} (version {version} keeps serving)"
    return answer


def _state_health(state: ModelHealth) -> dict[str, Any]:
    """A model's entry in the summary: its version's health, else loading or failed and
    why; while a load of its file runs (the first, or a new file's), how far it has gone
    (``loading``: size, bytes read, seconds; issue 24)."""
    if state.health is not None and state.version is not None:
        answer = _model_health(state.health, state.version, state.reason)
    else:
        answer = {"status": state.status, "serving": False}
        if state.reason:
            answer["reason"] = _hide(public_reason(state.reason))  # the file that did not load
    if state.progress is not None:
        answer["loading"] = state.progress.to_dict()
    _with_check(answer, state.check)
    return answer


def _with_check(answer: dict[str, Any], check: SwapCheck | None) -> None:
    """The last checked swap of a new file: its agreement with the version serving then,
    what was done, in one sentence too (issue 26)."""
    if check is not None:
        said = check.as_dict()
        said["message"], said["note"] = _hide(said["message"]), _hide(said["note"])
        answer["swap_check"] = said


def _folder_health(summary: HealthSummary) -> ResponseReturnValue:
    """A folder of models: each model's health, the files not served, and the one status
    of the summary (loading until every model found at start has loaded or failed)."""
    models: dict[str, Any] = {}
    for state in summary.models:
        answer = _state_health(state)
        if state.version is not None and state.reason:
            answer.pop("file_problem", None)
            answer["reason"] = _hide(public_reason(state.reason))  # the file that did not load
        models[state.name] = answer
    answer = {
        "status": summary.status,
        "serving": summary.serving,
        "models": models,
        "not_served": {name: _hide(reason) for name, reason in summary.not_served},
    }
    _with_log(answer)
    return jsonify(answer), 200 if summary.ready else 503

"""Open Inference Protocol v2 endpoints under ``/v2`` (see ``winserve.protocols.oip``)."""

from __future__ import annotations

from flask import Blueprint, Request, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import explaining
from winserve.dataplane import Held
from winserve.errors import BadRequest, UnsupportedMediaType
from winserve.protocols import oip
from winserve.web import held
from winserve.web.bodies import json_response, parse_json, raw_bytes
from winserve.web.prediction_log import PREDICTED

bp = Blueprint("oip", __name__, url_prefix="/v2")
BINARY_HEADER = "Inference-Header-Content-Length"
JSON_TYPES = ("application/json", "application/octet-stream")
# Headers every browser adds to a POST (Fetch standard); programs do not send them.
BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode")


def _held(name: str, version: str | None) -> Held:
    """The version a /v2/models/<name>[/versions/<v>] request is for: in a folder, the model
    of that name; for one file, the one model (its name checked as before). A version is the
    one serving or, while it drains, the one before it."""
    if held.plane().is_folder:
        model = held.held(name)
    else:
        model = held.held()
        oip.check_model(name, None, model.info())
    if version is None or version == str(model.version):
        return model
    return held.held_version(model.name, version)


def _metadata(model: Held) -> dict[str, object]:
    described = held.plane().description(model)
    answer = oip.model_metadata(described.info)
    answer["versions"] = list(described.versions)
    return answer


def _read(req: Request) -> tuple[object, memoryview | None]:
    """The JSON part of an infer request, and the binary tensor data after it, if any."""
    if not req.mimetype:
        # Triton's HTTP client sends no Content-Type at all (JSON or binary), so a program may
        # leave it out. A browser may not: a page's fetch() with a bare Blob body carries none
        # and so needs no CORS preflight, which would let any web site call infer (issue 13).
        if any(h in req.headers for h in BROWSER_HEADERS):
            raise UnsupportedMediaType(
                "send the body with Content-Type: application/json (a request from a web "
                "browser without one is refused)"
            )
    elif req.mimetype not in JSON_TYPES and not req.mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json (got {req.mimetype})")
    raw = raw_bytes(req, current_app.config["WINSERVE_MAX_BODY"])
    header = req.headers.get(BINARY_HEADER)
    if header is None:
        json_part, binary = raw, None
    else:
        if not header.isdigit() or int(header) > len(raw):
            raise BadRequest(f"{BINARY_HEADER} must be a byte count within the body")
        json_part, binary = raw[: int(header)], memoryview(raw)[int(header) :]
    try:
        text = json_part.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the JSON part of the body is not valid UTF-8") from None
    return parse_json(text), binary


@bp.get("")
def server_metadata() -> ResponseReturnValue:
    return jsonify(oip.server_metadata())


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """The data plane's one readiness (issue 23, strict as Triton's): not ready until every
    model found at start has loaded or failed, then ready while a model serves (each
    model's own readiness: /v2/models/<name>/ready)."""
    serving = held.plane().health().ready
    return jsonify({"ready": serving}), 200 if serving else 503


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    return jsonify(_metadata(_held(name, version)))


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    model = held.held(name) if held.plane().is_folder else held.held()
    if not model.health().serving:
        return jsonify({"name": name, "ready": False}), 503
    _held(name, version)
    return jsonify({"name": name, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    model = _held(name, version)
    info = model.info()
    body, binary = _read(req)
    decoded = oip.decode(body, info, binary)
    req.environ["winserve.rows"] = decoded.request.n_rows
    if decoded.explain:  # 409 saying what file to add, before any model call (issue 25)
        explaining.require_reference(info)
        explaining.check_rows(decoded.request.n_rows)
    answer = model.infer(decoded.request, info)
    req.environ[PREDICTED] = (decoded.request, info, answer.prediction)  # the log (issue 26)
    explanations = model.explain(decoded.request, info) if decoded.explain else None
    response = json_response(oip.encode(answer.prediction, decoded, info, version, explanations))
    response.headers["X-Model-Version"] = str(answer.version)
    return response

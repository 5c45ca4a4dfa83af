"""Open Inference Protocol v2 endpoints under ``/v2`` (see ``winserve.protocols.oip``)."""

from __future__ import annotations

from flask import Blueprint, Request, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve.errors import BadRequest, UnsupportedMediaType
from winserve.models.registry import Slot
from winserve.protocols import oip
from winserve.web import slots
from winserve.web.bodies import parse_json, raw_bytes
from winserve.web.prediction_log import PREDICTED
from winserve.web.responses import json_response

bp = Blueprint("oip", __name__, url_prefix="/v2")
BINARY_HEADER = "Inference-Header-Content-Length"
JSON_TYPES = ("application/json", "application/octet-stream")
# Headers every browser adds to a POST (Fetch standard); programs do not send them.
BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode")


def _slot(name: str, version: str | None) -> Slot:
    """The slot a /v2/models/<name>[/versions/<v>] request is for: in a folder, the model of
    that name; for one file, the one model (its name checked as before). A version is the
    one serving or, while it drains, the one before it."""
    chosen = slots.registry()
    if chosen.is_folder:
        slot = slots.slot(name)
    else:
        slot = slots.slot()
        oip.check_model(name, None, slot.info())
    if version is None or version == str(slot.version):
        return slot
    return slots.slot_version(slot.name, version)


def _metadata(slot: Slot) -> dict[str, object]:
    answer = oip.model_metadata(slot.info())
    entry = slots.registry().entry(slot.name)
    versions = [str(s.version) for s in slots.registry().served_versions(entry)]
    answer["versions"] = versions or [str(slot.version)]
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
    chosen = slots.registry()
    if chosen.is_folder:  # the server is ready when every model it has is serving
        entries = chosen.entries()
        serving = bool(entries) and all(
            e.current is not None and e.current.health().serving for e in entries
        )
    else:
        serving = slots.slot().health().serving
    return jsonify({"ready": serving}), 200 if serving else 503


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    return jsonify(_metadata(_slot(name, version)))


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    slot = slots.slot(name) if slots.registry().is_folder else slots.slot()
    if not slot.health().serving:
        return jsonify({"name": name, "ready": False}), 503
    _slot(name, version)
    return jsonify({"name": name, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    slot = _slot(name, version)
    info = slot.info()
    body, binary = _read(req)
    decoded = oip.decode(body, info, binary)
    req.environ["winserve.rows"] = decoded.request.n_rows
    prediction = slot.service.predict(decoded.request, info)
    req.environ[PREDICTED] = (decoded.request, info, prediction)  # the log (issue 26)
    response = json_response(oip.encode(prediction, decoded, info, version))
    response.headers["X-Model-Version"] = str(slot.version)
    return response

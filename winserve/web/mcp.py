"""``POST /mcp``: the served models as tools for AI assistants, over the Model Context
Protocol's streamable HTTP transport, answering in JSON (issue 27); ``GET /tools.json``: the
same tools as OpenAI-style function definitions.

::

    assistant ── POST /mcp  {"jsonrpc": "2.0", "id": 1, "method": "tools/call", ...}
        │  Host (hosts.py), token (auth.py), then here: Origin, body, protocol version
        ▼
    dispatch: initialize | server/discover | ping | tools/list | tools/call
        │  tools/list: one tool per served model (tools.py builds it from the model's
        │              description and card); tools/call: one row through the model's
        ▼              service, as POST /predict (validation, batching, deadlines)
    JSON-RPC response (application/json): a result, or an error object

Both eras of the protocol are spoken: the ``initialize`` handshake (2024-11-05 to
2025-11-25) and the per-request envelope of 2026-07-28, where every request carries its
version in ``params._meta`` and the ``MCP-Protocol-Version`` header must agree. Nothing is
remembered between requests (no session id): a folder's models appear and disappear from
``tools/list`` with the folder. The transport is written here, on Flask: the official SDK's
server needs an ASGI server, and waitress is WSGI. The SDK is a test dependency only.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import __version__, tools
from winserve.dataplane import Held
from winserve.errors import BadRequest, ModelUnavailable, NotFound, WinserveError
from winserve.protocols.native import decode
from winserve.web import held, hosts, paths
from winserve.web.bodies import json_body
from winserve.web.prediction_log import PREDICTED

bp = Blueprint("mcp", __name__)

# The protocol versions spoken (the official SDK's mcp_types.version, read when this was built)
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS = ("2026-07-28",)
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
# without the header and without an envelope, the spec says to assume this version
DEFAULT_VERSION = "2025-03-26"

# JSON-RPC error codes (the spec's, and MCP's own -32020s), with the HTTP status the
# streamable HTTP transport gives each
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022
HTTP_STATUS = {METHOD_NOT_FOUND: 404, INTERNAL_ERROR: 500}

CAPABILITIES = {"tools": {"listChanged": False}}
INSTRUCTIONS = (
    "Each tool is one machine-learning model served by winserve: give it one row of inputs "
    "(named as the tool's input schema names them) and it answers the model's prediction, "
    "with the probability of each class when the model gives them."
)


class RpcError(Exception):
    """A JSON-RPC error object, with the HTTP status it is sent with."""

    def __init__(self, code: int, message: str, data: Any = None, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status or HTTP_STATUS.get(code, 400)


def _error(request_id: Any, error: RpcError) -> ResponseReturnValue:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return jsonify({"jsonrpc": "2.0", "id": request_id, "error": body}), error.status


def error_body(error: WinserveError) -> dict[str, Any]:
    """An error met before the view (the token, a body too large) as a JSON-RPC error
    object, which an MCP client shows as the server's message."""
    code = INVALID_REQUEST if error.status < 500 else INTERNAL_ERROR
    data = {"status": error.status, "code": error.code}
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": error.message, "data": data},
    }


def _origin_allowed(origin: str) -> bool:
    """The spec asks servers to check ``Origin`` against DNS rebinding: a browser page may
    call ``/mcp`` only from this server's own origin or a name it answers to (hosts.py;
    with allowed_hosts "*", only from its own origin)."""
    try:
        parts = urlsplit(origin)
    except ValueError:  # "http://[::1": an IPv6 address not closed
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed page, a file), or not an origin at all
    if parts.netloc.lower() == (request.host or "").lower():
        return True
    allowed: frozenset[str] | None = current_app.extensions.get(hosts.ALLOWED_KEY)
    return allowed is not None and hosts.is_allowed(hosts.hostname(parts.netloc), allowed)


def _hide(text: str) -> str:
    return paths.hide(text, current_app.extensions.get("winserve.paths"))


# -- what the tools are ---------------------------------------------------------------------


def _served(name: str) -> Held | None:
    """This request's version of the model ``name``; None while it loads or after it failed."""
    try:
        return held.held(name)
    except (ModelUnavailable, NotFound):
        return None


def current_tools() -> list[tools.Tool]:
    """One tool per model serving now, in name order (a model that is loading is left out;
    the names of the others do not depend on it)."""
    found = []
    for name, model in sorted(tools.tool_names(held.plane().names()).items()):
        served = _served(model)
        if served is not None:
            found.append(tools.describe(name, model, served.info(), served.card))
    return found


def _call(params: dict[str, Any]) -> dict[str, Any]:
    name, arguments = params.get("name"), params.get("arguments", {})
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, 'tools/call needs "name", the name of a tool')
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, '"arguments" must be an object: input name → value')
    by_tool = tools.tool_names(held.plane().names())
    model = by_tool.get(name)
    if model is None:
        known = ", ".join(sorted(by_tool)) or "none"
        raise RpcError(INVALID_PARAMS, f"unknown tool {name[:100]!r}; the tools are: {known}")
    try:
        served = held.held(model)
        info = served.info()
        row = tools.row(info, arguments)
        body = {"columns": list(row), "data": [[v[0] for v in row.values()]]}
        decoded = decode(body, info.has_proba)
        prediction = served.infer(decoded, info).prediction
    except WinserveError as error:
        # the model refused the row, or cannot answer now: a tool result the assistant
        # reads (and can correct), not a protocol error (the spec's advice)
        message = _hide(error.message)
        return {"content": [{"type": "text", "text": message}], "isError": True}
    request.environ["winserve.rows"] = 1
    request.environ[PREDICTED] = (decoded, info, prediction)  # the log (issue 26)
    probabilities = prediction.probabilities[0] if prediction.probabilities else None
    answer = tools.result(info, served.card, prediction.predictions[0], probabilities)
    text = json.dumps(answer, ensure_ascii=False, default=str)
    return {"content": [{"type": "text", "text": text}], "structuredContent": answer}


# -- the protocol ---------------------------------------------------------------------------


def _server_info() -> dict[str, Any]:
    return {"name": "winserve", "title": "winserve", "version": __version__}


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    asked = params.get("protocolVersion")
    version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
    return {
        "protocolVersion": version,
        "capabilities": CAPABILITIES,
        "serverInfo": _server_info(),
        "instructions": INSTRUCTIONS,
    }


def _discover() -> dict[str, Any]:
    return {
        "supportedVersions": [*MODERN_VERSIONS, *HANDSHAKE_VERSIONS],
        "capabilities": CAPABILITIES,
        "serverInfo": _server_info(),
        "instructions": INSTRUCTIONS,
        "cacheScope": "private",
        "ttlMs": 0,
    }


def _modern_version(method: str, params: dict[str, Any]) -> str:
    """The version of a 2026-07-28 request: its envelope, checked against its headers."""
    meta = params.get("_meta")
    if not isinstance(meta, dict) or VERSION_KEY not in meta or CAPABILITIES_KEY not in meta:
        raise RpcError(
            INVALID_PARAMS, f"params._meta must carry {VERSION_KEY!r} and {CAPABILITIES_KEY!r}"
        )
    version = meta[VERSION_KEY]
    if request.headers.get(VERSION_HEADER) != version:
        raise RpcError(
            HEADER_MISMATCH, f"the {VERSION_HEADER} header does not match params._meta's version"
        )
    if request.headers.get(METHOD_HEADER) != method:
        raise RpcError(HEADER_MISMATCH, f"the {METHOD_HEADER} header does not match the method")
    if method == "tools/call" and request.headers.get(NAME_HEADER) not in (
        None,
        params.get("name"),
    ):
        raise RpcError(HEADER_MISMATCH, f"the {NAME_HEADER} header does not match the tool name")
    if version not in MODERN_VERSIONS:
        raise RpcError(
            UNSUPPORTED_VERSION,
            f"protocol version {str(version)[:40]!r} is not supported",
            {"supported": [*MODERN_VERSIONS, *HANDSHAKE_VERSIONS], "requested": str(version)},
        )
    return str(version)


def _dispatch(method: str, params: dict[str, Any]) -> dict[str, Any]:
    meta = params.get("_meta")
    header = request.headers.get(VERSION_HEADER)
    modern = (isinstance(meta, dict) and VERSION_KEY in meta) or header in MODERN_VERSIONS
    if modern or method == "server/discover":
        _modern_version(method, params)
    elif method != "initialize" and header is not None and header not in HANDSHAKE_VERSIONS:
        raise RpcError(
            INVALID_REQUEST,
            f"protocol version {header[:40]!r} ({VERSION_HEADER}) is not supported; "
            "this server speaks " + ", ".join((*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)),
        )
    if method == "initialize" and not modern:
        return _initialize(params)
    if method == "server/discover":
        result = _discover()
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": [t.mcp() for t in current_tools()]}
        if modern:  # a folder changes: a client may not reuse the list
            result.update(cacheScope="private", ttlMs=0)
    elif method == "tools/call":
        result = _call(params)
    else:
        raise RpcError(METHOD_NOT_FOUND, f"no method {method[:80]!r} here: this server has tools")
    if modern:
        result["resultType"] = "complete"
    return result


@bp.post("/mcp")
def endpoint() -> ResponseReturnValue:
    origin = request.headers.get("Origin")
    if origin is not None and not _origin_allowed(origin):
        refused = RpcError(
            INVALID_REQUEST, f"requests from the page at {origin[:100]!r} are refused", status=403
        )
        return _error(None, refused)
    try:
        message = json_body(request, current_app.config["WINSERVE_MAX_BODY"])
    except BadRequest as error:  # not JSON; a body too large or not JSON-typed keeps its 4xx
        return _error(None, RpcError(PARSE_ERROR, error.message))
    if isinstance(message, list):
        invalid = RpcError(INVALID_REQUEST, "send one JSON-RPC message per request (no batches)")
        return _error(None, invalid)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, RpcError(INVALID_REQUEST, "expected a JSON-RPC 2.0 message object"))
    if "method" not in message or "id" not in message:
        # a notification (notifications/initialized, …) or a client's response: nothing to say
        return Response(status=202)
    request_id, method = message["id"], message["method"]
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return _error(None, RpcError(INVALID_REQUEST, '"id" must be a string or an integer'))
    params = message.get("params", {})
    if not isinstance(method, str) or not isinstance(params, dict):
        invalid = RpcError(INVALID_REQUEST, '"method" must be a string and "params" an object')
        return _error(request_id, invalid)
    try:
        result = _dispatch(method, params)
    except RpcError as error:
        return _error(request_id, error)
    return jsonify({"jsonrpc": "2.0", "id": request_id, "result": result})


@bp.get("/tools.json")
def tools_json() -> ResponseReturnValue:
    """Each served model as an OpenAI-style function definition (the ``tools`` of a chat
    completion request); the same names and schemas as MCP's ``tools/list``."""
    return jsonify([tool.function() for tool in current_tools()])

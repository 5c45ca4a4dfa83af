"""A view's bodies, in and out: the request's body read (content type, size, JSON; each
failure a 4xx that says why) and the prediction's answer written as JSON.

::

    request ── is_upload? ── yes: winserve.web.uploads.files (image files, issue 24)
                          └─ no:  json_body_and_bytes ── (parsed JSON, the bytes as sent)
    the protocol's answer (plain data) ── json_response ──► Response (jsonify's bytes)

One module for both ends of a prediction route (issue 23: a newcomer follows ``POST /predict``
through fewer modules); an error's body is ``winserve.web.responses.error_response``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Request, Response
from flask.json.provider import DefaultJSONProvider

from winserve.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send a number")


# json.loads with an argument makes a decoder per call; this one is made once (issue 14)
_decode = json.JSONDecoder(parse_constant=_refuse_constant).decode


# jsonify's own output (compact, ASCII, keys in order, Flask's default for other types, a
# newline), from one encoder made once: jsonify makes one per call (issue 14). winserve never
# runs Flask in debug mode, where jsonify would indent.
_encode = json.JSONEncoder(
    ensure_ascii=True,
    sort_keys=False,
    separators=(",", ":"),
    default=DefaultJSONProvider.default,
).encode


def is_upload(request: Request) -> bool:
    """Files sent as ``multipart/form-data`` (``winserve.web.uploads`` reads them)."""
    if request.environ.get("CONTENT_TYPE") == "application/json":  # the usual: no parsing
        return False
    return request.mimetype == "multipart/form-data"


def json_response(body: Any) -> Response:
    """``jsonify(body)``, byte for byte, for the prediction routes."""
    # Flask's Response, as jsonify makes (the app's response_class, which winserve never
    # changes: no proxy lookup for it; issue 14)
    return Response(_encode(body) + "\n", mimetype="application/json")


def raw_bytes(request: Request, max_bytes: int) -> bytes:
    """The body, within the size limit, as sent (never compressed: that is said)."""
    encoding = request.environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"the body is sent with Content-Encoding: {encoding[:20]}; send it uncompressed"
        )
    environ = request.environ
    given = environ.get("CONTENT_LENGTH", "")
    # The usual request: read just its bytes from the server, without werkzeug's stream
    # wrappers (~15 µs; issue 14). A length over max_body_mb is refused below, as before; and
    # max_body_mb is never above Flask's own limit (Settings.max_upload_bytes).
    plain = given.isascii() and given.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ
    if plain and int(given) <= max_bytes:
        raw: bytes = environ["wsgi.input"].read(int(given))
        return raw
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(
            f"the body has {length} bytes, more than the {max_bytes} allowed (setting: max_body_mb)"
        )
    raw = request.get_data(cache=False)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"the body is larger than the {max_bytes} bytes allowed (setting: max_body_mb)"
        )
    return raw


def raw_text(request: Request, max_bytes: int) -> str:
    """The body as UTF-8 text, within the size limit."""
    return _utf8(raw_bytes(request, max_bytes))


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8 text") from None


def json_body(request: Request, max_bytes: int) -> Any:
    return json_body_and_bytes(request, max_bytes)[0]


def json_body_and_bytes(request: Request, max_bytes: int) -> tuple[Any, bytes]:
    """``json_body``, and the body's bytes as sent: the prediction log's writer process reads
    a request's rows from them, not the request thread (issue 29)."""
    if request.environ.get("CONTENT_TYPE") != "application/json":  # else nothing to parse
        mimetype = request.mimetype
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            shown = mimetype or "none"
            raise UnsupportedMediaType(
                f"send the body as JSON with Content-Type: application/json (got {shown})"
            )
        charset = request.mimetype_params.get("charset", "utf-8").strip().lower()
        if charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"the body is declared as {charset[:20]}; send JSON as UTF-8 (charset=utf-8)"
            )
    raw = raw_bytes(request, max_bytes)
    return parse_json(_utf8(raw)), raw


def parse_json(text: str) -> Any:
    """JSON without NaN/Infinity; every failure a 400 that says where."""
    if not text or text.isspace():  # what text.strip() would leave empty, without the copy
        raise BadRequest("the body is empty; send JSON")
    try:
        if text[0] == "\ufeff":  # json.loads's own message for it
            return json.loads(text, parse_constant=_refuse_constant)
        return _decode(text)
    except RecursionError:
        raise BadRequest(
            "the JSON is nested too deeply (winserve's formats need a few levels; "
            "the parser stops near 1000)"
        ) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def flag(args: Mapping[str, str], name: str) -> bool:
    """The query-string switch ``name`` of ``args``: ?proba=true, ?proba=1, ?proba (empty)
    are on; a value that is neither is refused naming the parameter (a new user's trial:
    "expected true or false, got 'maybe'" did not say which)."""
    value = args.get(name)
    if value is None:
        return False
    if value.strip().lower() in {"", "1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise BadRequest(f"the query parameter {name!r} takes true or false, got {value!r}")

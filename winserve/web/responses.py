"""Rendering a ``WinserveError`` as JSON: one function, each protocol passes its own body shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue

from winserve.errors import WinserveError

# jsonify's own output (compact, ASCII, keys in order, Flask's default for other types, a
# newline), from one encoder made once: jsonify makes one per call (issue 14). winserve never
# runs Flask in debug mode, where jsonify would indent.
_encode = json.JSONEncoder(
    ensure_ascii=True,
    sort_keys=False,
    separators=(",", ":"),
    default=DefaultJSONProvider.default,
).encode


def json_response(body: Any) -> Response:
    """``jsonify(body)``, byte for byte, for the prediction routes."""
    # Flask's Response, as jsonify makes (the app's response_class, which winserve never
    # changes: no proxy lookup for it; issue 14)
    return Response(_encode(body) + "\n", mimetype="application/json")


def error_response(
    error: WinserveError, body: Callable[[WinserveError], dict[str, Any]]
) -> ResponseReturnValue:
    response = jsonify(body(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response

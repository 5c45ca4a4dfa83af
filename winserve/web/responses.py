"""Rendering a ``WinserveError`` as JSON: one function, each protocol passes its own body shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from winserve.errors import WinserveError


def error_response(
    error: WinserveError, body: Callable[[WinserveError], dict[str, Any]]
) -> ResponseReturnValue:
    response = jsonify(body(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response

"""Errors that carry their HTTP status.

Every error a client can cause or meet is one of these; each protocol renders them in its own
shape (see ``winserve.protocols``). Messages name the problem (which column, which row, which
setting) and never carry a traceback or a server-side file path.
"""

from __future__ import annotations

import re

# A name a client sent (a column, an input, a model) is echoed up to this many characters,
# then cut and counted: a 4 MB column name came back whole in the error (issue 28)
MAX_NAME_SHOWN = 60
_LONG = "{" + str(MAX_NAME_SHOWN + 1) + ",}"
# a quoted name opens after no letter or digit and closes before none: the apostrophes of
# prose ("the model's"), and the text between one name's closing quote and the next name's
# opening quote, are never taken for a name (a 400 listing several rows lost its middle)
_LONG_QUOTED = re.compile(
    f"(?<![\\w'\"])'([^'\\n]{_LONG})'(?!\\w)|(?<![\\w'\"])\"([^\"\\n]{_LONG})\"(?!\\w)"
)


def value_count(count: int) -> str:
    """``"1 value"``, ``"3 values"``: a row's length in a message."""
    return f"{count} value" if count == 1 else f"{count} values"


def shown(name: object) -> str:
    """``name`` quoted for a message: ``'churn'``, or ``'xxxx…' (4,194,304 characters)``."""
    text = str(name)
    if len(text) <= MAX_NAME_SHOWN:
        return repr(text)
    return f"{text[:MAX_NAME_SHOWN] + '…'!r} ({len(text):,} characters)"


def cut_long_names(message: str) -> str:
    """``message`` with each quoted run longer than ``MAX_NAME_SHOWN`` cut as ``shown`` cuts
    it: every error passes through here, whichever code quoted the name."""
    if len(message) <= MAX_NAME_SHOWN + 2:
        return message

    def cut(match: re.Match[str]) -> str:
        return shown(match.group(1) if match.group(1) is not None else match.group(2))

    return _LONG_QUOTED.sub(cut, message)


class WinserveError(Exception):
    """Base class: an error with an HTTP status and a stable, machine-readable code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        message = cut_long_names(message)
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(WinserveError):
    status = 400
    code = "bad_request"


class SchemaMismatch(BadRequest):
    """The rows name other columns than the model's (MLflow calls this a schema failure;
    winserve's own protocol keeps the plain ``bad_request`` code)."""


class Unauthorized(WinserveError):
    status = 401
    code = "unauthorized"


class NotFound(WinserveError):
    status = 404
    code = "not_found"


class MethodNotAllowed(WinserveError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(WinserveError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(WinserveError):
    status = 415
    code = "unsupported_media_type"


class ModelInputError(BadRequest):
    """The model itself rejected the rows (it raised ValueError/TypeError on them)."""

    code = "model_rejected_input"


class ModelError(WinserveError):
    """The model raised something that is not about the input: the operator must look."""

    status = 500
    code = "model_error"


class ModelUnavailable(WinserveError):
    """No model replica can answer right now (loading, restarting, crashed, or too busy)."""

    status = 503
    code = "model_unavailable"

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = retry_after


class ModelFailed(ModelUnavailable):
    """The model failed to load (or its sample prediction failed): it will not answer until
    the operator fixes it, so nothing says "still loading" (issue 22). The message is one
    line a colleague can act on (``winserve.failures.public_reason``)."""

    code = "model_failed"

    def __init__(self, message: str, *, retry_after: int = 0) -> None:
        # no Retry-After (issue 23, a new user's finding): the model stays failed until its
        # file is replaced, and "retry in 2 s" kept a client's retry loop asking for ever
        WinserveError.__init__(self, message)
        self.retry_after = retry_after


class ModelTimeout(WinserveError):
    status = 504
    code = "model_timeout"


class ModelLoadError(Exception):
    """The model could not be loaded or described; the message is one line for the operator."""


class SettingsError(Exception):
    """A setting is unknown, malformed or contradicts another; one line, exit code 2."""

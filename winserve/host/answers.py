"""The records a model host answers with, typed: what crosses back to the web process.

::

    ModelHost.load(spec)  ──► LoadAnswer    = Loaded    {"ok": True, "info": HostInfo}
                                            | Failed    {"ok": False, "error": ErrorRecord}
    ModelHost.predict(…)  ──► PredictAnswer = Predicted {"ok": True, "predictions", …}
                                            | Failed    (+ "isolated": the rows that failed,
                                                         each with its error, the calls refused
                                                         as a whole, and the others' answers)
    ModelHost.explain / .whatif ──► AskAnswer (host.why: {"ok": True, …} | Failed)

They are ``TypedDict``s, i.e. plain dicts at run time: they pickle across the manager's
connection exactly as the untyped dicts did (no class to import on the other side, no cost per
call: ``bench/run.py``), and mypy checks every reader (``backends.base.prediction_from``, the
pool's split of a batch's answer). ``ok`` is the tag: ``if answer["ok"]`` narrows the union.
"""

from __future__ import annotations

import traceback
from typing import Any, Literal, NotRequired, TypedDict, cast

# Exceptions a model raises when the rows themselves are the problem (wrong values, unknown
# category, shape): the caller gets a 400, not a 500.
INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
MAX_MESSAGE = 2000

# A loaded model's description (``ModelInfo.from_dict`` reads it in the web process).
HostInfo = dict[str, Any]


class ErrorRecord(TypedDict):
    """An exception of the model (or of loading it), as plain data (STYLE.md 6)."""

    type: str
    message: str
    input_error: NotRequired[bool]  # the rows are the problem: 400, else 500
    traceback: NotRequired[str]


class Isolated(TypedDict):
    """A call that failed on some rows: every row's answer (``None`` where it failed) and
    each failed row's own error, by row."""

    predictions: list[Any]
    probabilities: NotRequired[list[Any] | None]
    scores: NotRequired[list[Any] | None]
    errors: list[tuple[int, ErrorRecord]]
    # a merged batch's calls the model refused as a whole though none of their rows fails
    # alone: (the call's first row, the model's error for the call alone); their rows' answers
    # stay None (issue 23: never the answers of rows the model was not asked as sent)
    refused: NotRequired[list[tuple[int, ErrorRecord]]]


class Predicted(TypedDict):
    ok: Literal[True]
    predictions: list[Any]
    probabilities: NotRequired[list[Any] | None]
    scores: NotRequired[list[Any] | None]
    # a CSV job's chunk: each row's prediction and probabilities as the file's cells, the rows
    # joined by "\n" (host.answer_text; the probabilities then left out)
    texts: NotRequired[str]
    # seconds the model host took for the call, its own (a CSV job sizes its chunks by it)
    seconds: NotRequired[float]


class Failed(TypedDict):
    ok: Literal[False]
    error: ErrorRecord
    isolated: NotRequired[Isolated]


class Loaded(TypedDict):
    ok: Literal[True]
    info: HostInfo


PredictAnswer = Predicted | Failed
LoadAnswer = Loaded | Failed
# explain / whatif (issue 25): their own fields, built by ``winserve.host.why``
AskAnswer = dict[str, Any]


def failure(kind: str, message: str, *, input_error: bool = False, trace: str = "") -> Failed:
    """The one shape of every answer that is not a result: what crosses back to the web
    process instead of an exception (STYLE.md 6)."""
    return {
        "ok": False,
        "error": {
            "type": kind,
            "message": message[:MAX_MESSAGE],
            "input_error": input_error,
            "traceback": trace,
        },
    }


def error_record(exc: BaseException) -> Failed:
    """``failure`` for an exception the model (or loading it) raised, with its traceback."""
    message = str(exc).strip() or type(exc).__name__
    return failure(
        type(exc).__name__,
        message,
        input_error=isinstance(exc, INPUT_ERRORS),
        trace=traceback.format_exc(),
    )


def row_error(error: ErrorRecord) -> ErrorRecord:
    """A failed row's error; an input error's traceback is dropped (it is never logged, and a
    batch of bad rows would carry one per row back to the web process)."""
    if error.get("input_error"):
        return {**error, "traceback": ""}
    return error


def ask_failure(kind: str, message: str, *, input_error: bool = False) -> AskAnswer:
    """``failure`` as an explain / what-if answer (``host.why`` builds those as plain dicts)."""
    return cast(AskAnswer, failure(kind, message, input_error=input_error))


def ask_error(exc: BaseException) -> AskAnswer:
    """``error_record`` as an explain / what-if answer."""
    return cast(AskAnswer, error_record(exc))

"""Explanations and what-if curves on the web side (issue 25): the host's answer records to
results or to the error each stands for.

::

    view ─► Service.explain / .whatif ─► prepare (the rows checked as for /predict)
                                       ─► backend.ask("explain" | "whatif", payload, options)
                                       ─► answer(record): the result, or
                                            NoReference (409: the file to add, how to make it)
                                            ModelInputError (400) / ModelError (500) as predict's

The reference sample is read in the model host (``winserve.host.reference``); the web process
only reads what ``/model`` says of it, ``ModelInfo.extra["reference"]``.
"""

from __future__ import annotations

from typing import Any

from winserve.backends.base import error_from
from winserve.errors import BadRequest, ModelTimeout, WinserveError
from winserve.host.reference import how_to_make, not_a_table
from winserve.model_info import ModelInfo

# the host's error types that are no fault of the request nor of the model (winserve.host.why)
NOT_EXPLAINED = frozenset({"NoReference", "NotExplainable"})


class NoReference(WinserveError):
    """The model cannot be explained: no reference sample, or not a model of columns."""

    status = 409
    code = "no_reference"


def answer(record: dict[str, Any]) -> dict[str, Any]:
    """The result in a host's answer record; raises the error it stands for."""
    if record.get("ok"):
        return record
    error = record["error"]
    if error.get("type") in NOT_EXPLAINED:
        raise NoReference(str(error["message"]))
    if error.get("type") == "ExplainTooSlow":
        raise ModelTimeout(str(error["message"]))
    raise error_from(error)


def reference_of(info: ModelInfo) -> dict[str, Any] | None:
    """What the model host said of the reference sample: ``{rows, source}`` (``problem``
    when it cannot be used), or None when there is none."""
    found = info.extra.get("reference")
    return dict(found) if isinstance(found, dict) else None


MAX_ROWS = 10  # rows one request may ask to explain (winserve.host.why.MAX_EXPLAINED_ROWS)


def check_rows(n_rows: int) -> None:
    """A 400 before any model call when a request asks for too many explanations."""
    if n_rows > MAX_ROWS:
        raise BadRequest(
            f"{n_rows} rows asked to be explained; at most {MAX_ROWS} per request (each costs "
            "up to 20,000 model rows): send the others in further requests, or without "
            "?explain=true"
        )


def tables_only(info: ModelInfo) -> str:
    """Why ``info``'s model is not explained at all (it takes images or tensors: issue 24);
    "" for a model of columns."""
    return not_a_table([f.kind for f in info.features]) if info.tensor_inputs else ""


def require_reference(info: ModelInfo) -> None:
    """``NoReference`` (409) when the model has no usable reference sample: saying which file
    to add and how to make it, or why the one there cannot be used; for a model of images or
    tensors, that explanations cover table models (no sample would help)."""
    if info.tensor_inputs:
        raise NoReference(tables_only(info))
    found = reference_of(info)
    if found is None:
        source = info.source if info.sha256 else ""  # a file, not "built-in demo"
        raise NoReference(
            "this model has no reference sample, which explanations and what-if curves are "
            f"computed against: {how_to_make(source)}"
        )
    if found.get("problem"):
        raise NoReference(str(found["problem"]))


def reference_line(info: ModelInfo) -> str:
    """What ``winserve check`` says of the reference sample, in one line."""
    if info.tensor_inputs:
        return f"not used: {tables_only(info)}"
    found = reference_of(info)
    if found is None:
        source = info.source if info.sha256 else ""
        return f"none (explanations and what-if curves are off): {how_to_make(source)}"
    if found.get("problem"):
        return f"NOT used: {found['problem']}"
    return f"{found['source']}, {found['rows']} rows (explanations and what-if curves on)"

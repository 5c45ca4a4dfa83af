"""A folder of models over HTTP (issue 15): ``GET /models/<name>`` (what ``/model`` says for the
default model) and the Open Inference Protocol's model repository extension:
``POST /v2/repository/index``, ``POST /v2/repository/models/<name>/load`` and ``/unload``.

Loading and unloading change what the server serves, so they are the operator's: with a token
set, the token in the ``Authorization`` header is required (the login cookie alone is not
enough); without one, only a program on this computer may (never a web page, whatever computer
its browser runs on)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve.dataplane import ModelHealth
from winserve.errors import BadRequest
from winserve.web import auth, csrf, held, paths

bp = Blueprint("models", __name__)
LOCAL_ADDRESSES = auth.LOCAL_ADDRESSES
Forbidden = auth.Forbidden


@bp.get("/models/<name>")
def model_info(name: str) -> ResponseReturnValue:
    from winserve.web.api import public_info

    return jsonify(public_info(held.plane().description(held.held(name))))


def _repository_caller() -> None:
    """The repository is the owner's (issue 26: an owner token, or this computer when no token
    is set); without a token, for programs only. The page's login cookie alone never
    suffices: a page on another port of this host is the same site to a browser, which sends it
    the SameSite=Strict cookie (issue 28, finding 6); with the cookie, the call must come from
    this server's own page (csrf.check_header)."""
    auth.require_owner("the model repository (loading and unloading models)")
    if auth.tokens_required(current_app):
        if auth.bearer(request.headers.get("Authorization", "")):
            return  # the token check before every request has compared it
        csrf.check_header()
        return
    if request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site", "none") not in (
        "none",
        "same-origin",
    ):
        raise Forbidden("loading and unloading models is for programs, not web pages")


def _state(model: ModelHealth) -> str:
    """The repository extension's state of a model (KServe's names)."""
    if model.version is not None:
        return "READY" if model.serving else "UNAVAILABLE"
    return "LOADING" if model.loading else "UNAVAILABLE"


@bp.post("/v2/repository/index")
def repository_index() -> ResponseReturnValue:
    """Every model with its state and version, then the files not served, from the data
    plane's one summary (issue 23)."""
    _repository_caller()
    summary = held.plane().health()
    answer: list[dict[str, Any]] = []
    for model in summary.models:
        item: dict[str, Any] = {"name": model.name, "state": _state(model)}
        if model.version is not None:
            item["version"] = str(model.version)
        if model.reason:
            item["reason"] = paths.public(model.reason)
        answer.append(item)
    for name, reason in (*summary.unloaded, *summary.not_served):  # unloaded: issue 23
        answer.append({"name": name, "state": "UNAVAILABLE", "reason": reason})
    return jsonify(answer)


@bp.post("/v2/repository/models/<name>/load")
def repository_load(name: str) -> ResponseReturnValue:
    """Load (or reload) ``name`` from the folder now; answers once it serves, or why not."""
    _repository_caller()
    reason = held.plane().load(name)
    if reason:
        raise BadRequest(f"{name} was not loaded: {paths.public(reason)}")
    return jsonify({})


@bp.post("/v2/repository/models/<name>/unload")
def repository_unload(name: str) -> ResponseReturnValue:
    _repository_caller()
    held.plane().unload(name)
    return jsonify({})

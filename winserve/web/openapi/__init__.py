"""``GET /openapi.json``: an OpenAPI 3.1 description of every API endpoint, built for the model
being served (its column names and types appear in the request schemas).

The document is put together here from one module per protocol, each a ``ModelInfo`` (None
while the model loads) in and path items out::

    view ─ data plane: names, infos, versions ─▶ document ─┬─ native  /predict … /monitor.json
                                                           ├─ mlflow  /invocations /ping …
                                                           ├─ oip     /v2 …
                                                           ├─ native  /openapi.json /mcp …
                                                           └─ jobs    /jobs …
    (bodies: the rows' schemas from the columns; common: answers, errors, GET operations)

The order of the paths is the order the API page's outline lists them in."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from winserve import __version__
from winserve.errors import ModelUnavailable, NotFound
from winserve.model_info import ModelInfo
from winserve.web import auth
from winserve.web.openapi import jobs, mlflow, native, oip
from winserve.web.openapi.common import ANY_OBJECT, NATIVE_ERROR, Schema, get, ok

bp = Blueprint("openapi", __name__)


def _paths(
    info: ModelInfo | None, names: list[str] | None = None, versions: list[str] | None = None
) -> Schema:
    """The routes for ``info`` (the default model); ``names``: the models served, which the
    Open Inference Protocol's routes take (default: ``info``'s own name)."""
    if not names:
        names = [info.name] if info is not None else []
    return {
        **native.paths(info),
        **mlflow.paths(info),
        **oip.paths(info, names, versions),
        **native.about_paths(),
        **jobs.paths(info),  # a table's file, or images (issue 24)
    }


# the routes each model also has under /models/<name> (web/app.py registers the native and
# MLflow blueprints there), described with that model's own columns
MODEL_ROUTES = (
    "/predict",
    "/whatif",
    "/model",
    "/health",
    "/invocations",
    "/ping",
    "/version",
    "/log.csv",
    "/monitor.json",
    "/outcomes",
    "/jobs",
    "/jobs/{job_id}/sheet",
    "/jobs/{job_id}/status",
    "/jobs/{job_id}/result.csv",
    "/jobs/{job_id}/result.xlsx",
)


def _model_paths(name: str, info: ModelInfo | None) -> Schema:
    """``/models/<name>`` and its routes, for the model ``name`` (``info``: None while it
    loads); the name is in the path itself, percent-encoded, so each model's request bodies
    name its own columns."""
    base = "/models/" + quote(name, safe="")
    own = _paths(info, [name])
    paths: Schema = {
        base: get(
            f"What {name} is and expects, with the version serving",
            ok(ANY_OBJECT),
            NATIVE_ERROR,
            "winserve",
        )
    }
    for route in MODEL_ROUTES:
        paths[base + route] = own[route]
    return paths


def document(
    info: ModelInfo | None,
    base_url: str,
    token_required: bool,
    models: dict[str, ModelInfo | None] | None = None,
    versions: list[str] | None = None,
) -> Schema:
    """The document for the default model ``info`` (the bare routes) and each of ``models``
    (by name: the routes under ``/models/<name>``)."""
    title = f"winserve: {info.name}" if info is not None else "winserve"
    paths = _paths(info, sorted(models) if models else None, versions)
    for name, model in sorted((models or {}).items()):
        paths.update(_model_paths(name, model))
    doc: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": "Predictions from one model over winserve's own JSON API, MLflow's "
            "scoring protocol and the Open Inference Protocol v2.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
    }
    if token_required:
        doc["components"] = {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}}
        doc["security"] = [{"token": []}]
    return doc


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    from winserve.web import held

    plane = held.plane()

    def described(name: str | None) -> ModelInfo | None:
        try:
            return held.held(name).info()
        except (ModelUnavailable, NotFound):  # loading, or a folder of models and none named
            return None

    names = plane.names()
    models = {name: described(name) for name in names}
    versions: set[str] = set()
    for name in names:
        with contextlib.suppress(NotFound):  # unloaded meanwhile
            versions.update(plane.versions(name))
    token = auth.tokens_required(current_app)  # the token setting or named ones (issue 26)
    ordered = sorted(versions, key=lambda v: (len(v), v))
    base = request.host_url.rstrip("/")
    return jsonify(document(described(None), base, token, models, ordered))

"""The Flask app factory: ``create_app(settings, backend)``. Nothing happens at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from winserve import __version__
from winserve.dataplane import Backend, DataPlane, Registry
from winserve.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    WinserveError,
)
from winserve.predlog.writer import PredictionLog
from winserve.protocols import mlflow, native, oip
from winserve.settings import Settings
from winserve.web import held, mcp, paths
from winserve.web.dispatch import WinserveFlask
from winserve.web.responses import error_response

error_log = logging.getLogger("winserve.error")

HTTP_ERRORS: dict[int, type[WinserveError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


# Each protocol answers errors in its own shape, wherever they arise (routing, size limits,
# the token check, the view itself); everything else gets the native shape.
ERROR_SHAPES: tuple[tuple[tuple[str, ...], Callable[[WinserveError], dict[str, Any]]], ...] = (
    (("/v2",), oip.error_body),
    (("/invocations", "/ping", "/version"), mlflow.error_body),
    (("/mcp",), mcp.error_body),
)


def _shape_for(path: str) -> Callable[[WinserveError], dict[str, Any]]:
    if path.startswith("/models/"):  # /models/<name>/invocations answers as /invocations
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/models"
    for prefixes, body in ERROR_SHAPES:
        if any(path == p or path.startswith(p + "/") for p in prefixes):
            return body
    return native.error_body


def _render(error: WinserveError) -> ResponseReturnValue:
    if error.status not in (404, 405):  # those quote the request's own path, not the server's
        error.message = paths.hide(error.message, current_app.extensions.get("winserve.paths"))
    elif error.status == 404:
        from winserve.web.auth import stranger

        if stranger():  # a token is set and the caller has none: no model names (issue 28)
            error.message = f"not found: {request.path}"
    return error_response(error, _shape_for(request.path))


def _from_http(exc: HTTPException) -> WinserveError:
    kind = HTTP_ERRORS.get(exc.code or 500, WinserveError)
    messages = {
        404: f"no such page or endpoint: {request.path}",
        405: f"{request.method} is not allowed on {request.path}",
    }
    if exc.code == 413:  # the route's own limit (gate.py), by what the request said it sends
        from winserve.web import gate

        limit = gate.route_limit(request.endpoint, current_app.config["WINSERVE_SETTINGS"])
        return gate.too_large(limit, request.content_length)
    error = kind(messages.get(exc.code or 500, exc.description or exc.name))
    if exc.code == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            error.headers["Allow"] = ", ".join(allowed)
    return error


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    registry: Registry | None = None,
    prediction_log: PredictionLog | None = None,
    plane: DataPlane | None = None,
) -> Flask:
    """The app for ``plane`` (the models served, by name), or for the data plane over
    ``registry``, or, given a ``backend``, for that one model as the only one served
    (tests). The views talk to the data plane only (issue 23). ``prediction_log``: where
    prediction requests are logged (its owner starts and closes it: the server); None,
    nowhere."""
    from winserve.web import (
        api,
        auth,
        csrf,
        gate,
        hosts,
        mlflow_api,
        models,
        monitor,
        observe,
        oip_api,
        openapi,
        outcomes,
        ui,
    )
    from winserve.web import prediction_log as predlog_web

    # static_folder=None: the UI blueprint serves /static, open to all
    app = WinserveFlask(__name__, static_folder=None)
    app.config.update(
        WINSERVE_SETTINGS=settings,
        WINSERVE_MAX_BODY=settings.max_body_bytes,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if plane is None:
        if registry is not None:
            plane = DataPlane(registry)
        elif backend is not None:
            plane = DataPlane.of_backend(settings, backend)
        else:
            raise ValueError("create_app needs a data plane, a registry or a backend")
    folders = {*paths.folders(settings.model, settings.config), plane.private_folder}
    app.extensions["winserve.paths"] = paths.pattern(sorted(folders, key=len, reverse=True))
    held.install(app, plane)
    if not plane.is_folder:  # the one model's CSV jobs, as before the registry
        app.extensions["winserve.scoring.jobs"] = plane.current_jobs()
    app.register_blueprint(api.bp)
    app.register_blueprint(mlflow_api.bp)
    app.register_blueprint(oip_api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(mcp.bp)  # /mcp and /tools.json (issue 27)
    # Each model of a folder at /models/<name>/… (the bare routes answer for the default one);
    # the name is taken from the path before the view runs (held.install).
    app.register_blueprint(api.bp, url_prefix="/models/<model>", name="native_model")
    app.register_blueprint(mlflow_api.bp, url_prefix="/models/<model>", name="mlflow_model")
    app.register_blueprint(ui.bp, url_prefix="/models/<model>", name="ui_model")
    observe.install(app, settings.request_log)
    predlog_web.install(app, prediction_log)  # after observe: its counters join /metrics
    monitor.install(app)  # /monitor: drift against the reference sample (issue 26)
    outcomes.install(app)  # POST /outcomes: accuracy once the truth is known (issue 26)
    hosts.install(app, settings)  # before the token check: a rebinding page learns nothing
    auth.install(app, settings.token, settings.tokens_file)  # named callers: issue 26
    gate.install(app)  # each route's body limit, after the token check (issue 28)
    csrf.install(app)

    @app.errorhandler(WinserveError)
    def winserve_error(error: WinserveError) -> ResponseReturnValue:
        if isinstance(error, auth.Forbidden) and auth.wants_page():  # a browser (issue 26)
            return auth.refusal_page(error)
        return _render(error)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        return _render(_from_http(exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        request_id = observe.request_id()
        error_log.exception("request %s failed", request_id)
        return _render(
            WinserveError(
                f"internal error; the server log has the details (request id {request_id})"
            )
        )

    @app.context_processor
    def versions() -> dict[str, str]:
        return {"winserve_version": __version__}

    return app

"""The pages' blueprint and what every page shares: the model this request holds, the status
line's words, and how an error is shown (issue 23: split from ui.py).

::

    request ─► a view of ``bp`` (ui.py: the model's page, its form and answer, the model list;
               api_page.py: the API page; jobs_pages.py: CSV scoring; swap_page.py)
      model_state() ─► held.held(), this request's version ─► (ModelInfo | None, Health)
      page_state(health) ─► the status line, in words for people (/page-status says the same)
      a WinserveError ─► page_error: a message page for people; the native JSON error for a
                         program (the status routes, the jobs API: for_program)

The views live in the modules above, on this one blueprint, so their endpoints stay
``ui.<view>`` (and ``ui_model.<view>`` under /models/<name>): the body limits, the token check
and the prediction log name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from winserve.dataplane import Health
from winserve.errors import ModelUnavailable, PayloadTooLarge, WinserveError
from winserve.failures import public_reason
from winserve.load_progress import duration_text, size_text
from winserve.model_info import ModelInfo, sample_failed
from winserve.web import csrf, held, paths

bp = Blueprint(
    "ui", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)


@dataclass(frozen=True)
class PageState:
    key: str  # ready | degraded | restarting | loading | failed | stopped
    text: str


def page_state(health: Health) -> PageState:
    """What the status line says, in words for people (the script says the same)."""
    shown = paths.public(health.reason)  # file names only, never a server path
    reason = f" ({shown})" if shown else ""
    if health.status == "ready":
        return PageState("ready", "Ready.")
    if health.status == "degraded":
        down = sum(r.state != "ready" for r in health.replicas)
        if not down and shown:  # the replicas answer, the cluster under them has a problem
            return PageState("degraded", f"Ready, with a problem: {shown}.")
        return PageState(
            "degraded", f"Ready. {down} of {len(health.replicas)} model copies are restarting."
        )
    if health.status == "failed":
        if sample_failed(health.reason):
            # one line, no library internals; the console has the full text (issue 22)
            why = paths.public(public_reason(health.reason)).rstrip(".")
            return PageState(
                "failed",
                f"The model failed and is not served: {why}. The person who runs winserve "
                "sees the details in its window; this page does not change until they fix it.",
            )
        why = paths.public(public_reason(health.reason))
        retrying = any(r.restarts for r in health.replicas)  # it served, then failed
        return PageState(
            "failed",
            f"The model could not be loaded{f' ({why})' if why else ''}. "
            + ("winserve keeps trying; the" if retrying else "The")
            + " person who runs winserve sees the details in its window.",
        )
    if health.status == "stopped":
        return PageState("stopped", "winserve is stopping.")
    if any(r.restarts or r.state == "restarting" for r in health.replicas):
        return PageState(
            "restarting",
            f"The model is restarting after a problem{reason}. Predictions resume in a few "
            "seconds; this page updates by itself.",
        )
    if health.loading is not None:  # how far: "loading: 340 MB, 12 s" (issue 24)
        return PageState(
            "loading",
            f"The model is loading: {health.loading.text()}. This page updates by itself.",
        )
    return PageState("loading", "The model is loading. This page updates by itself.")


@bp.app_context_processor
def page_helpers() -> dict[str, Any]:
    # "/" lists the models: a folder of several, none the default
    listed = held.plane().lists_models()
    return {
        "page_state": page_state,
        "model_base": held.base(),
        "models_listed": listed,
        "size_text": size_text,  # a model file's size, as the console says it (issue 24)
        "duration_text": duration_text,  # a job's time
    }


def model_state() -> tuple[ModelInfo | None, Health]:
    """This request's model's description (None while it cannot answer) and health."""
    model = held.held()
    health = model.health()
    try:
        return model.info(), health
    except ModelUnavailable:
        return None, health


def without_version() -> Health | None:
    """The health of this request's model while it has no version (a folder's model loads
    one at start, or when its file is new, and shows none until then): ``loading`` with how
    far the load has gone, or ``failed`` with why; None when it has a version. Issue 24: its
    page was a 503 error page that never updated, where one file's page says "The model is
    loading: 14 MB, 1 s. This page updates by itself."."""
    plane = held.plane()
    name = held.model_name() or plane.default_name()
    for model in plane.health().models if name is not None else ():
        if model.name == name and model.version is None:
            if model.loading:
                return Health("loading", loading=model.progress)
            return Health("failed", reason=model.reason)
    return None


def for_program() -> bool:
    """Whether the jobs routes answer in JSON: a program (a Bearer or X-Winserve-Client
    header), or a caller that asks for JSON first (issue 27)."""
    if csrf.program():
        return True
    accept = request.accept_mimetypes
    return accept.best_match(["text/html", "application/json"]) == "application/json"


# -- errors on pages are pages ----------------------------------------------------------------


@bp.errorhandler(WinserveError)
def page_error(error: WinserveError) -> ResponseReturnValue:
    if request.path.endswith("status") or (
        request.blueprint in ("ui", "ui_model") and "/jobs" in request.path and for_program()
    ):
        from winserve.protocols import native

        response = jsonify(native.error_body(error))
        response.status_code = error.status
        response.headers.update(error.headers)  # WWW-Authenticate, Retry-After: as a page's
        return response
    message = paths.public(error.message)
    page = render_template("message.html", title="That did not work", message=message)
    response = Response(page, status=error.status, mimetype="text/html")
    response.headers.update(error.headers)
    return response


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_: RequestEntityTooLarge) -> ResponseReturnValue:
    limit = current_app.config["WINSERVE_SETTINGS"].max_csv_mb
    return page_error(
        PayloadTooLarge(f"the file is larger than the {limit:g} MB allowed (setting: max_csv_mb)")
    )

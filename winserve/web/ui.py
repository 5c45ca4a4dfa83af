"""The web page colleagues open: the model card (``/``)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from winserve.errors import ModelUnavailable
from winserve.service import Service

bp = Blueprint(
    "ui", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)


@bp.get("/")
def index() -> ResponseReturnValue:
    service: Service = current_app.extensions["winserve.service"]
    health = service.backend.health()
    try:
        info = service.info()
    except ModelUnavailable:
        info = None
    base = request.host_url.rstrip("/")
    return render_template(
        "index.html",
        info=info,
        health=health,
        base=base,
        token_required=bool(current_app.config.get("WINSERVE_TOKEN")),
    )

"""Access control: an optional token for the API and the web page, and security headers.

Programs send ``Authorization: Bearer <token>``; people type the token once on ``/login`` and
get an HttpOnly, SameSite=Strict cookie holding a value derived from the token (never the token
itself). Every comparison is constant-time. Health endpoints stay open for monitoring.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue

from winserve.errors import Unauthorized

SESSION_COOKIE = "winserve_session"
OPEN_ENDPOINTS = frozenset(
    {
        "native.health",
        "mlflow.ping",
        "oip.live",
        "oip.ready",
        "oip.model_ready",
        "ui.static",
        "auth.login",
        "auth.login_submit",
    }
)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

bp = Blueprint("auth", __name__, template_folder="templates")


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"winserve web session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return _same(given.strip(), token)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and _same(cookie, session_value(token))


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never another site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@bp.get("/login")
def login() -> ResponseReturnValue:
    return render_template("login.html", next=_safe_next(request.args.get("next")), error="")


@bp.post("/login")
def login_submit() -> ResponseReturnValue:
    token: str = current_app.config["WINSERVE_TOKEN"]
    target = _safe_next(request.form.get("next"))
    if not _same(request.form.get("token", ""), token):
        page = render_template("login.html", next=target, error="That token is not right.")
        return page, 401
    response = redirect(target, code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return response


def install(app: Flask, token: str) -> None:
    """Security headers always; the token check when a token is set."""
    app.config["WINSERVE_TOKEN"] = token
    app.register_blueprint(bp)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        # not "no-referrer": with it, browsers send "Origin: null" on the page's own forms
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    if not token:
        return

    @app.before_request
    def require_token() -> ResponseReturnValue | None:
        if request.endpoint in OPEN_ENDPOINTS or authorized(token):
            return None
        if request.method == "GET" and (request.endpoint or "").startswith("ui."):
            return redirect(f"/login?next={request.full_path.rstrip('?')}", code=303)
        error = Unauthorized(
            "this server needs a token: send the header "
            "'Authorization: Bearer <token>' (ask whoever runs it)"
        )
        error.headers["WWW-Authenticate"] = 'Bearer realm="winserve"'
        raise error

"""Access control: an optional token for the API and the web page, and security headers.

Programs send ``Authorization: Bearer <token>``; people type the token once on ``/login`` and
get an HttpOnly, SameSite=Strict session cookie. The cookie holds when it was issued and an HMAC
of that under a key made fresh at each start: nothing derived from the token (a stolen cookie
cannot be used to guess it offline), void after a restart, and refused ``SESSION_SECONDS`` after
it was issued (checked here, not only by the browser's Max-Age). Every comparison is
constant-time. Failed tokens are throttled per client address (``throttle.py``). Health
endpoints stay open for monitoring.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue

from winserve.errors import Unauthorized, WinserveError
from winserve.web import gate
from winserve.web.throttle import Throttle, client_key

SESSION_COOKIE = "winserve_session"
SESSION_SECONDS = 12 * 3600
OPEN_ENDPOINTS = frozenset(
    {
        "native.health",
        "native_model.health",
        "mlflow.ping",
        "mlflow_model.ping",
        "oip.live",
        "oip.ready",
        "oip.model_ready",
        "ui.static",
        "ui_model.static",
        "auth.login",
        "auth.login_submit",
    }
)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# What a path may hold when it goes back into a Location header: RFC 3986 path and query
# characters; anything else (spaces, non-ASCII) is percent-encoded, existing escapes kept.
PATH_SAFE = "/?&=%:@!$'()*+,;~-._"

# Open endpoints that say how the models are (their names, versions, errors): a stranger (a
# token is set and the caller sent none) is told only whether the server serves (issue 28)
TELLING_ENDPOINTS = frozenset({"native.health", "native_model.health", "oip.model_ready"})
STRANGER = "winserve.stranger"

bp = Blueprint("auth", __name__, template_folder="templates")


class TooManyAttempts(WinserveError):
    status = 429
    code = "too_many_attempts"


def _throttle() -> Throttle:
    throttle: Throttle = current_app.extensions["winserve.throttle"]
    return throttle


def _client() -> str:
    return client_key(request.remote_addr)


def _wait_text(seconds: float) -> str:
    return f"too many wrong tokens from your address: try again in {math.ceil(seconds)} s"


def session_value(key: bytes, issued: int | None = None) -> str:
    """A session cookie: when it was issued, and an HMAC of that under this start's key."""
    issued = int(time.time()) if issued is None else issued
    nonce = secrets.token_hex(8)
    mac = hmac.new(key, f"{issued}.{nonce}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{nonce}.{mac}"


def session_valid(cookie: str, key: bytes, now: float | None = None) -> bool:
    issued_text, _, rest = cookie.partition(".")
    nonce, _, mac = rest.partition(".")
    if not issued_text.isdigit() or not nonce or not mac:
        return False
    age = (time.time() if now is None else now) - int(issued_text)
    if not 0 <= age <= SESSION_SECONDS:
        return False
    expected = hmac.new(key, f"{issued_text}.{nonce}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode())


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def attempt(throttle: Throttle, client: str, given: str, token: str) -> tuple[bool, float]:
    """One Bearer token checked and counted (``Throttle.attempt``); the gate (gate.py) and
    the check below share it, so a token is counted once wherever it is judged."""
    return throttle.attempt(client, lambda: _same(given, token))


def _locked(wait: float) -> TooManyAttempts:
    return TooManyAttempts(_wait_text(wait), headers={"Retry-After": str(math.ceil(wait))})


def _check_bearer(given: str, token: str) -> bool:
    """The Bearer token, throttled: 429 while this address is locked out after wrong ones."""
    judged = gate.withheld()  # the gate judged it before the body: not counted twice
    if judged.startswith(gate.LOCKED):
        raise _locked(float(judged.partition(" ")[2] or 1))
    if judged == gate.UNAUTHORIZED:
        return False
    right, wait = attempt(_throttle(), _client(), given, token)
    if wait:
        raise _locked(wait)
    return right


def bearer(header: str) -> str:
    """The token an ``Authorization`` header carries ("" for none, or another scheme)."""
    scheme, _, given = header.partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def authorized(token: str) -> bool:
    given = bearer(request.headers.get("Authorization", ""))
    if given:
        return _check_bearer(given, token)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and session_valid(cookie, current_app.config["WINSERVE_SESSION_KEY"])


def stranger() -> bool:
    """Whether this caller of an open endpoint is a stranger: a token is set and it sent
    neither the token nor a valid session cookie."""
    return bool(request.environ.get(STRANGER))


def _recognised(token: str) -> bool:
    """The token or a session, judged as everywhere (a wrong token counts, and a locked-out
    address is a stranger), but never refused: the endpoint is open."""
    try:
        return authorized(token)
    except TooManyAttempts:
        return False


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never another site (no open redirect), never a header
    break. Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so
    ``/<TAB>/evil.example`` is ``//evil.example`` to them: any such character, or anything
    that does not start with exactly one slash, sends the person to ``/``."""
    if not target or any(c == "\\" or ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return "/"
    if not target.startswith("/") or target.startswith("//"):
        return "/"
    return quote(target, safe=PATH_SAFE)


def _login_url() -> str:
    """Where a page asks for the token, and the page to come back to (quoted: a path may hold
    CR/LF, which must never reach the Location header)."""
    # the path is decoded: a name's own ?, # or % must stay escaped (issue 28: pct%41 led to pctA)
    target = quote(request.path, safe=PATH_SAFE.replace("?", "").replace("%", ""))
    if request.query_string:
        target += "?" + quote(request.query_string.decode("latin-1"), safe=PATH_SAFE)
    return "/login?next=" + quote(_safe_next(target), safe="/")


@bp.get("/login")
def login() -> ResponseReturnValue:
    return render_template("login.html", next=_safe_next(request.args.get("next")), error="")


@bp.post("/login")
def login_submit() -> ResponseReturnValue:
    token: str = current_app.config["WINSERVE_TOKEN"]
    target = _safe_next(request.form.get("next"))
    given = request.form.get("token", "")
    right, wait = _throttle().attempt(_client(), lambda: _same(given, token))
    if wait:
        page = render_template("login.html", next=target, error=_wait_text(wait).capitalize())
        return page, 429, {"Retry-After": str(math.ceil(wait))}
    if not right:
        page = render_template("login.html", next=target, error="That token is not right.")
        return page, 401
    response = redirect(target, code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(current_app.config["WINSERVE_SESSION_KEY"]),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return response


def install(app: Flask, token: str) -> None:
    """Security headers always; the token check when a token is set."""
    app.config["WINSERVE_TOKEN"] = token
    # random per start: a cookie from an earlier run, or computed from the token, is void
    app.config["WINSERVE_SESSION_KEY"] = secrets.token_bytes(32)
    app.extensions["winserve.throttle"] = Throttle()
    app.register_blueprint(bp)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        # added, not set: no view sets these (set() scans and checks each; issue 14)
        headers.add("X-Content-Type-Options", "nosniff")
        # not "no-referrer": with it, browsers send "Origin: null" on the page's own forms
        headers.add("Referrer-Policy", "same-origin")
        headers.add("X-Frame-Options", "DENY")
        content_type = headers.get("Content-Type", "")
        if content_type.partition(";")[0].strip().lower() == "text/html":  # its mimetype
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    if not token:
        return

    @app.before_request
    def require_token() -> ResponseReturnValue | None:
        endpoint = request.endpoint
        if endpoint in OPEN_ENDPOINTS:
            if endpoint in TELLING_ENDPOINTS:
                request.environ[STRANGER] = not _recognised(token)
            return None
        if authorized(token):
            return None
        if request.method == "GET" and (request.endpoint or "").startswith(("ui.", "ui_model.")):
            return redirect(_login_url(), code=303)
        if bearer(request.headers.get("Authorization", "")):
            message = "the token sent is not this server's (ask whoever runs it for the right one)"
        else:
            message = (
                "this server needs a token: send the header "
                "'Authorization: Bearer <token>' (ask whoever runs it)"
            )
        error = Unauthorized(message)
        error.headers["WWW-Authenticate"] = 'Bearer realm="winserve"'
        raise error

"""Access control: an optional token for the API and the web page, and security headers.

Programs send ``Authorization: Bearer <token>``; people type the token once on ``/login`` and
get an HttpOnly, SameSite=Strict session cookie. The cookie holds when it was issued and an HMAC
of that under a key made fresh at each start: nothing derived from the token (a stolen cookie
cannot be used to guess it offline), void after a restart, and refused ``SESSION_SECONDS`` after
it was issued (checked here, not only by the browser's Max-Age). Every comparison is
constant-time. Failed tokens are throttled per client address (``throttle.py``). Health
endpoints stay open for monitoring.

Named callers and roles (issue 26)::

    Bearer token / login form ──► TokenBook.find (winserve/tokens.py): the `token` setting
        (the caller "owner") or a line of the tokens file (its name, owner or user role)
    session cookie ──► its name, signed; the book's role for that name now (removed: void)
        └─► environ[CALLER] = Caller(name, role)
    no token set: this computer is the caller "local", an owner; any other address "-", a user
        (``caller_of``: nothing stored, worked out when asked)

An owner may do everything; a user predicts, explains, uses the page and scores files. The
owner's routes (the monitor, the log's export, the model repository, forcing a swap, outcome
uploads) say so with ``@owner_only`` (or ``require_owner()``), which answers 403 naming the
role needed (to a browser as a page, ``wants_page``; to a program in its JSON);
``tests/test_roles_server.py`` walks every route with every kind of caller, so a new route
without a decision fails it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue

from winserve.errors import Unauthorized, WinserveError
from winserve.tokens import ANYONE, LOCAL, SINGLE_NAME, Caller, TokenBook
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
PAGE_ENDPOINTS = ("ui.", "ui_model.", "monitor_page.", "monitor_page_model.")
TOKENS = "winserve.tokens"  # app.extensions: the TokenBook, only when tokens are required
CALLER = "winserve.caller"  # the WSGI environ: the Caller a token or cookie named
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
View = TypeVar("View", bound=Callable[..., Any])

bp = Blueprint("auth", __name__, template_folder="templates")


class TooManyAttempts(WinserveError):
    status = 429
    code = "too_many_attempts"


class Forbidden(WinserveError):
    status = 403
    code = "forbidden"


def caller_of(environ: Mapping[str, Any], required: bool) -> Caller:
    """Who sent the request of ``environ``: the caller its token or cookie named; without
    tokens (``required`` false), this computer is "local", an owner, and anyone else "-"."""
    found: Caller | None = environ.get(CALLER)
    if found is not None:
        return found
    if not required and environ.get("REMOTE_ADDR") in LOCAL_ADDRESSES:
        return LOCAL
    return ANYONE


def tokens_required(app: Flask) -> bool:
    return TOKENS in app.extensions


def caller() -> Caller:
    """Who sent this request (see ``caller_of``)."""
    return caller_of(request.environ, TOKENS in current_app.extensions)


def require_owner(what: str = "this") -> None:
    """403 unless this request's caller is an owner: ``what`` names the thing refused."""
    who = caller()
    if who.is_owner:
        return
    if who is ANYONE and TOKENS not in current_app.extensions:
        raise Forbidden(
            f"{what} is for the model's owner: from this computer only, unless a token is set "
            "(setting: token, or an owner token: winserve token add NAME --owner)"
        )
    if who is ANYONE:  # an open route's stranger: the route itself was let in without a token
        raise Forbidden(f"{what} is for the model's owner: send an owner token")
    raise Forbidden(
        f"{what} is for the model's owner; the token of {who.name!r} is a user token (it may "
        "predict, explain, use the page and score files): ask the owner"
    )


def wants_page() -> bool:
    """Whether a refusal goes to a person's browser, which asks for HTML before JSON (a
    program sends a Bearer token or X-Winserve-Client, or asks for JSON or ``*/*``)."""
    headers = request.headers
    if headers.get("X-Winserve-Client") or bearer(headers.get("Authorization", "")):
        return False
    accept = request.accept_mimetypes
    return accept["text/html"] > accept["application/json"]


def refusal_page(error: WinserveError) -> Response:
    """The owner check's 403 as the pages' error page, its message the same (issue 26: a
    colleague logged in on the page who opened the monitor read raw JSON)."""
    page = render_template("message.html", title="That is the owner's", message=error.message)
    response = Response(page, status=error.status, mimetype="text/html")
    response.headers.update(error.headers)
    return response


def owner_only(view: View) -> View:
    """The view answers only an owner (``require_owner``); others get 403."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        require_owner(f"{request.method} {request.path}")
        return view(*args, **kwargs)

    guarded.winserve_owner_only = True  # type: ignore[attr-defined]
    return cast(View, guarded)


def _throttle() -> Throttle:
    throttle: Throttle = current_app.extensions["winserve.throttle"]
    return throttle


def _client() -> str:
    return client_key(request.remote_addr)


def _wait_text(seconds: float) -> str:
    return f"too many wrong tokens from your address: try again in {math.ceil(seconds)} s"


def session_value(key: bytes, issued: int | None = None, name: str = SINGLE_NAME) -> str:
    """A session cookie: when it was issued, whose token it was (a name: letters, digits, _
    and -), and an HMAC of both under this start's key."""
    issued = int(time.time()) if issued is None else issued
    nonce = secrets.token_hex(8)
    mac = hmac.new(key, f"{issued}.{nonce}.{name}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{nonce}.{name}.{mac}"


def session_name(cookie: str, key: bytes, now: float | None = None) -> str | None:
    """The name a valid session cookie was issued to, or None."""
    issued_text, _, rest = cookie.partition(".")
    nonce, _, rest = rest.partition(".")
    name, _, mac = rest.partition(".")
    if not issued_text.isdigit() or not nonce or not name or not mac:
        return None
    age = (time.time() if now is None else now) - int(issued_text)
    if not 0 <= age <= SESSION_SECONDS:
        return None
    expected = hmac.new(key, f"{issued_text}.{nonce}.{name}".encode(), hashlib.sha256)
    if hmac.compare_digest(mac.encode("utf-8", "replace"), expected.hexdigest().encode()):
        return name
    return None


def session_valid(cookie: str, key: bytes, now: float | None = None) -> bool:
    return session_name(cookie, key, now) is not None


def cookie_caller(cookie: str, key: bytes, book: TokenBook) -> Caller | None:
    """The caller of a session cookie, with the role the book gives that name now (a name
    removed from the tokens file: None, the cookie is void)."""
    name = session_name(cookie, key)
    return book.named(name) if name is not None else None


def attempt(
    throttle: Throttle, client: str, given: str, book: TokenBook
) -> tuple[Caller | None, float]:
    """One Bearer token looked up and counted (``Throttle.attempt``): its caller (None: not
    a token of this server), and how long the address must wait. The gate (gate.py) and the
    check below share it, so a token is counted once wherever it is judged."""
    found: list[Caller] = []

    def right() -> bool:
        named = book.find(given)
        if named is not None:
            found.append(named)
        return named is not None

    _, wait = throttle.attempt(client, right)
    return (found[0] if found else None), wait


def _locked(wait: float) -> TooManyAttempts:
    return TooManyAttempts(_wait_text(wait), headers={"Retry-After": str(math.ceil(wait))})


def _check_bearer(given: str, book: TokenBook) -> Caller | None:
    """The Bearer token's caller, throttled: 429 while this address is locked out after
    wrong ones."""
    judged = gate.withheld()  # the gate judged it before the body: not counted twice
    if judged.startswith(gate.LOCKED):
        raise _locked(float(judged.partition(" ")[2] or 1))
    if judged == gate.UNAUTHORIZED:
        return None
    found, wait = attempt(_throttle(), _client(), given, book)
    if wait:
        raise _locked(wait)
    return found


def bearer(header: str) -> str:
    """The token an ``Authorization`` header carries ("" for none, or another scheme)."""
    scheme, _, given = header.partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def identified(book: TokenBook) -> Caller | None:
    """The caller this request's token or session cookie names (None: neither), kept in the
    environ for the views, the logs and the role checks."""
    given = bearer(request.headers.get("Authorization", ""))
    if given:
        found = _check_bearer(given, book)
    else:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        key = current_app.config["WINSERVE_SESSION_KEY"]
        found = cookie_caller(cookie, key, book) if cookie else None
    if found is not None:
        request.environ[CALLER] = found
    return found


def stranger() -> bool:
    """Whether this caller of an open endpoint is a stranger: a token is set and it sent
    neither the token nor a valid session cookie."""
    return bool(request.environ.get(STRANGER))


def _recognised(book: TokenBook) -> bool:
    """A token or a session, judged as everywhere (a wrong token counts, and a locked-out
    address is a stranger), but never refused: the endpoint is open."""
    try:
        return identified(book) is not None
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
    book: TokenBook | None = current_app.extensions.get(TOKENS)
    target = _safe_next(request.form.get("next"))
    given = request.form.get("token", "")
    if book is None:  # no token is set: nothing to log in to
        return redirect(target, code=303)
    found, wait = attempt(_throttle(), _client(), given, book)
    if wait:
        page = render_template("login.html", next=target, error=_wait_text(wait).capitalize())
        return page, 429, {"Retry-After": str(math.ceil(wait))}
    if found is None:
        page = render_template("login.html", next=target, error="That token is not right.")
        return page, 401
    response = redirect(target, code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(current_app.config["WINSERVE_SESSION_KEY"], name=found.name),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return response


def install(app: Flask, token: str, tokens_file: Path | None = None) -> None:
    """Security headers always; the token check when a token is set or ``tokens_file`` names
    callers (decided now; the names in the file are read again when it changes)."""
    app.config["WINSERVE_TOKEN"] = token
    book = TokenBook(tokens_file, single=token)
    if book.required:
        app.extensions[TOKENS] = book
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

    if not book.required:
        return

    @app.before_request
    def require_token() -> ResponseReturnValue | None:
        endpoint = request.endpoint
        if endpoint in OPEN_ENDPOINTS:
            if endpoint in TELLING_ENDPOINTS:
                request.environ[STRANGER] = not _recognised(book)
            return None
        if identified(book) is not None:
            return None
        # a page asks for the token; the monitor is a page too (issue 26)
        if request.method == "GET" and (request.endpoint or "").startswith(PAGE_ENDPOINTS):
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

"""Cross-site request forgery protection for the page's forms.

Each browser gets a random value in an HttpOnly, SameSite=Strict cookie; every form carries an
HMAC of it under a key made fresh at each start. A POST from a form is accepted only when the
two agree (compared in constant time) and, when the browser names one, the ``Origin`` is this
server. Another site can neither read the cookie nor compute the form value. API calls that
change the server (the model repository's) take the same value in an ``X-CSRF-Token`` header
when they come with the cookie rather than the token (``check_header``). A program that
uploads rows to score (``POST /jobs``) proves it is no form with a header a form cannot send:
``Authorization: Bearer <token>``, or ``X-Winserve-Client`` when no token is set (``program``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Flask, Response, after_this_request, current_app, g, request

from winserve.errors import WinserveError

COOKIE = "winserve_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
CLIENT_HEADER = "X-Winserve-Client"  # a program's mark when no token is set (issue 27)


class CsrfFailed(WinserveError):
    status = 403
    code = "csrf_failed"


def _key() -> bytes:
    key: bytes = current_app.config["WINSERVE_CSRF_KEY"]
    return key


def _expected(browser: str) -> str:
    return hmac.new(_key(), browser.encode(), hashlib.sha256).hexdigest()


def form_token() -> str:
    """The value for the form's hidden field (sets the cookie on this response if needed)."""
    browser = request.cookies.get(COOKIE, "")
    if len(browser) != 43:  # secrets.token_urlsafe(32)
        browser = g.get("csrf_new")
        if not browser:
            browser = g.csrf_new = secrets.token_urlsafe(32)
            # this response only: an after_request hook cost every API request a look (issue 14)
            after_this_request(_set_cookie)
    return _expected(browser)


def _set_cookie(response: Response) -> Response:
    response.set_cookie(
        COOKIE,
        g.csrf_new,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return response


def check() -> None:
    """Raise ``CsrfFailed`` unless this POST came from one of this server's own pages."""
    # host_url comes from the Host header, which hosts.py has checked against this server's
    # names before any view runs; unchecked, a rebinding page's own origin would match it
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise CsrfFailed(
            "this form was sent from another site; open the page on this server and try again"
        )
    browser = request.cookies.get(COOKIE, "")
    given = request.form.get(FIELD, "")
    if not browser and not given:  # neither a page's form nor a program saying it is one
        raise CsrfFailed(
            "this request came from no page of this server: a program sends the header "
            f"'{CLIENT_HEADER}: 1' (or 'Authorization: Bearer <token>' when a token is set); "
            "a page: reload it and try again"
        )
    if not browser or not hmac.compare_digest(given.encode(), _expected(browser).encode()):
        raise CsrfFailed(
            "the form has expired or did not come from this page; reload the page and try again"
        )


def program() -> bool:
    """Whether this request comes from a program rather than a form: it carries a header that
    no HTML form can send, and that a script of another site cannot send either without a CORS
    preflight, which winserve never grants (issue 27). ``Authorization: Bearer`` was checked
    against the token by auth.py before any view runs (a wrong one is refused with 401), and
    with no token set it is as unsendable by a form as ``X-Winserve-Client``."""
    headers = request.headers
    return bool(headers.get(CLIENT_HEADER)) or headers.get("Authorization", "").lower().startswith(
        "bearer "
    )


def check_form_or_program() -> None:
    """``check`` for a form; a program (``program``) needs no form value. An ``Origin`` of
    another site is refused in both cases: a browser names the page that sent the request."""
    if not program():
        check()
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise CsrfFailed("this request was sent from another site's page")


def check_header() -> None:
    """Raise ``CsrfFailed`` unless this API call with the session cookie came from one of this
    server's own pages: an ``Origin`` naming this server and the form value in the
    ``X-CSRF-Token`` header. SameSite=Strict does not stop a page on another port of the same
    host (the same site to a browser) from sending the cookie (issue 28, finding 6)."""
    origin = request.headers.get("Origin")
    if origin is None or origin.rstrip("/") != request.host_url.rstrip("/"):
        raise CsrfFailed(
            "with the page's login cookie this call must come from this server's own page; "
            "programs send the header 'Authorization: Bearer <token>'"
        )
    browser = request.cookies.get(COOKIE, "")
    given = request.headers.get(HEADER, "")
    if not browser or not hmac.compare_digest(given.encode(), _expected(browser).encode()):
        raise CsrfFailed(
            f"this call needs the page's {HEADER} header, or the header "
            "'Authorization: Bearer <token>'"
        )


def install(app: Flask) -> None:
    app.config["WINSERVE_CSRF_KEY"] = secrets.token_bytes(32)
    app.jinja_env.globals["csrf_token"] = form_token

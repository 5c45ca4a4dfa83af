"""What a request may send before it is read (issue 28; DESIGN decision 17, bounded before
authorised).

waitress reads a whole request, body included, before the app runs: up to 512 KB in memory,
the rest into a temporary file. Left alone, a stranger's 200 MB body is on disk before the token
is looked at, and a 20 MB login form is parsed whole. The gate judges each request from its
headers, in waitress's I/O thread, before any body byte is kept::

    client ─ headers ─► GatedParser (waitress I/O thread) ─► Gate.verdict(method, path, headers)
                            │ let in: the body is read as usual, its route's limit checked
                            │         while it streams (a chunked body has no length up front)
                            │ withheld: no body kept; the connection's further bytes dropped
                            ▼           and the connection closed after the answer
                        Flask app ─► before_request: 401/429 (auth.py) or 413 (here), each in
                                     the protocol's own error shape

Routes and their limits: the login form 8 KB, the page's form 64 KB (or room for one text of
``max_text_length``), uploads ``max_csv_mb`` on the upload routes only (rows pasted url-encoded
``max_body_mb``), the other open routes and unknown paths 64 KB, every other route (JSON, CSV,
the OIP binary extension, MCP) ``max_body_mb``. A form has at most
1,000 fields: werkzeug parses a url-encoded one whole, at ~45 bytes of memory per byte of tiny
fields (issue 28), so they are counted first. The app checks the same limits again
(``request.max_content_length``), so they also hold under another WSGI server or Flask's test
client, where no gate runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_cookie

from winserve.errors import PayloadTooLarge, Unauthorized
from winserve.settings import Settings
from winserve.web.throttle import client_key

# The gate's answer travels to the app in this request header (as the WSGI environ's
# HTTP_X_WINSERVE_WITHHELD); one a client sends itself is removed before the gate decides.
WITHHELD_HEADER = "X_WINSERVE_WITHHELD"
WITHHELD_ENV = "HTTP_" + WITHHELD_HEADER
TOO_LARGE = "too-large"
UNAUTHORIZED = "unauthorized"
LOCKED = "locked"  # "locked <seconds>": this address is locked out for wrong tokens

LOGIN_FORM_BYTES = 8 * 1024  # a token, the page to go back to, nothing else
# the page's form: one field per column; 64 KB holds a few hundred columns of long text and
# costs ~3 MB of memory to parse
PAGE_FORM_BYTES = 64 * 1024
TEXT_FIELD_BYTES = 12  # a character url-encoded: up to 9 bytes (%E2%80%A6), and the rest
ENDPOINTS_KEPT = 1024  # paths whose route the gate remembers
OTHER_BYTES = 64 * 1024  # the open routes (health, ping, …) and paths no route matches
MULTIPART_OVERHEAD = 64 * 1024  # the upload form's boundaries, headers and CSRF field
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_PARTS = 1000  # a form field per column: the page's form for a very wide model

LOGIN = frozenset({"auth.login_submit"})
# the page's small url-encoded forms: the model's form (also posted by the page's script for the
# why and what-if charts, issue 25) and a workbook's sheet choice (issue 27)
PAGE_FORMS = frozenset(
    f"{blueprint}.{view}"
    for blueprint in ("ui", "ui_model")
    for view in ("predict_form", "why_panel", "choose_sheet")
)
UPLOADS = frozenset({"ui.create_job", "ui_model.create_job"})


@dataclass(frozen=True)
class Limit:
    """A route's largest body, and the setting (or fixed bound) a 413 names."""

    bytes: int
    named: str


def route_limit(endpoint: str | None, settings: Settings, mimetype: str = "") -> Limit:
    """The largest body ``endpoint`` accepts (None: a path no route matches)."""
    if endpoint in LOGIN:
        return Limit(LOGIN_FORM_BYTES, "the login form's fixed limit")
    if endpoint in PAGE_FORMS:  # room for one text of max_text_length, url-encoded
        room = max(PAGE_FORM_BYTES, TEXT_FIELD_BYTES * settings.max_text_length)
        return Limit(room, "the page form's limit (setting: max_text_length)")
    if endpoint in UPLOADS:
        if mimetype == FORM_TYPE:  # rows pasted by a program, not the page's multipart form
            return Limit(settings.max_body_bytes, "setting: max_body_mb; upload larger files")
        return Limit(settings.max_csv_bytes + MULTIPART_OVERHEAD, "setting: max_csv_mb")
    from winserve.web.auth import OPEN_ENDPOINTS  # auth imports this module

    if endpoint is None or endpoint in OPEN_ENDPOINTS:  # what a stranger may send anything to
        return Limit(OTHER_BYTES, "this route takes no body")
    return Limit(settings.max_body_bytes, "setting: max_body_mb")


def too_large(limit: Limit, length: int | None) -> PayloadTooLarge:
    if limit.named == "setting: max_csv_mb":
        size = f"{(limit.bytes - MULTIPART_OVERHEAD) / (1024 * 1024):g} MB"
        what = "the file is larger than the"
    else:
        size = f"{limit.bytes:,} bytes"
        what = "the body is larger than the"
    if length is not None:
        what = f"the body has {length:,} bytes, more than the"
    return PayloadTooLarge(f"{what} {size} allowed ({limit.named})")


class Gate:
    """The app's rules, asked from headers alone: which route, which limit, whether the
    request carries the token (counted by the same throttle as the app's own check)."""

    def __init__(self, app: Flask) -> None:
        from winserve.web import auth

        self._auth = auth
        self._settings: Settings = app.config["WINSERVE_SETTINGS"]
        self._book = app.extensions.get(auth.TOKENS)  # None: no token is needed
        self._session_key: bytes = app.config.get("WINSERVE_SESSION_KEY", b"")
        self._adapter = app.url_map.bind("localhost")
        self._throttle = app.extensions.get("winserve.throttle")
        self._endpoints: dict[tuple[str, str], str | None] = {}  # only the I/O thread asks
        self._limits: dict[tuple[str | None, bool], Limit] = {}

    def endpoint(self, method: str, path: str) -> str | None:
        key = (method, path)
        if key in self._endpoints:  # the usual paths, asked again and again: ~0.2 µs, not ~10
            return self._endpoints[key]
        try:
            found: str | None = str(self._adapter.match(path, method)[0])
        except HTTPException:  # 404, 405, or a redirect to the path with a slash
            found = None
        if len(path) <= 256:  # a stranger's paths: short ones only, bounded, then forgotten
            if len(self._endpoints) >= ENDPOINTS_KEPT:
                self._endpoints.clear()
            self._endpoints[key] = found
        return found

    def limit(self, method: str, path: str, headers: dict[str, str]) -> Limit:
        return self._limit(self.endpoint(method, path), headers)

    def _limit(self, endpoint: str | None, headers: dict[str, str]) -> Limit:
        form = headers.get("CONTENT_TYPE", "").startswith(FORM_TYPE)
        found = self._limits.get((endpoint, form))
        if found is None:  # routes × 2: bounded
            kind = FORM_TYPE if form else ""
            found = self._limits[endpoint, form] = route_limit(endpoint, self._settings, kind)
        return found

    def verdict(
        self, method: str, path: str, headers: dict[str, str], client: str, length: int | None
    ) -> str | None:
        """Why the body of this request is not to be read, or None: read it."""
        endpoint = self.endpoint(method, path)
        if self._book is not None and endpoint not in self._auth.OPEN_ENDPOINTS:
            judged = self._authorised(headers, client)
            if judged is not None:
                return judged
        limit = self._limit(endpoint, headers)
        if length is not None and length > limit.bytes:
            return TOO_LARGE
        return None

    def _authorised(self, headers: dict[str, str], client: str) -> str | None:
        auth = self._auth
        given = auth.bearer(headers.get("AUTHORIZATION", ""))
        if given:
            # compared and counted here, once: the app is told the outcome and does not count
            # it again; uncounted, the gate would be a guessing oracle (a withheld body answers
            # at once, a let-in one waits for its bytes)
            found, wait = auth.attempt(self._throttle, client_key(client), given, self._book)
            if wait:
                return f"{LOCKED} {wait:.3f}"
            return None if found is not None else UNAUTHORIZED
        cookie = parse_cookie(headers.get("COOKIE", "")).get(auth.SESSION_COOKIE, "")
        if cookie and auth.cookie_caller(cookie, self._session_key, self._book) is not None:
            return None
        return UNAUTHORIZED


def withheld() -> str:
    """The gate's reason for not reading this request's body ("" when it was read)."""
    reason: str = request.environ.get(WITHHELD_ENV, "")
    return reason


def install(app: Flask) -> None:
    """The app's own check of the route limits (after the token check: a stranger learns no
    limit), for requests the gate let in and for servers without the gate."""
    settings: Settings = app.config["WINSERVE_SETTINGS"]
    # each route's limit, worked out once (issue 14: every request runs this hook)
    limits: dict[tuple[str | None, bool], Limit] = {}

    @app.before_request
    def bound_the_body() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        environ = req.environ
        content_type: str = environ.get("CONTENT_TYPE", "")
        form = content_type.startswith(FORM_TYPE)
        key = (req.endpoint, form)
        limit = limits.get(key)
        if limit is None:  # routes × 2: bounded
            limit = limits[key] = route_limit(key[0], settings, FORM_TYPE if form else "")
        reason = environ.get(WITHHELD_ENV)
        if reason == TOO_LARGE:
            raise too_large(limit, req.content_length)
        if reason:  # the gate found no token; auth.py has answered already, unless it erred
            raise Unauthorized("this server needs a token (setting: token)")
        req.max_content_length = limit.bytes  # multipart: Flask's MAX_FORM_PARTS, 1,000
        if form and req.method == "POST":
            _count_fields(req)


def _count_fields(req: Request) -> None:
    """A url-encoded form's fields counted before werkzeug parses it: it parses one whole,
    at ~45 bytes of memory per byte of tiny fields (issue 28), and counts no parts. The body
    (within its route's limit) is read once and kept for the parse."""
    fields = req.get_data(cache=True).count(b"&") + 1
    if fields > MAX_FORM_PARTS:
        raise PayloadTooLarge(
            f"the form has {fields:,} fields, more than the {MAX_FORM_PARTS} allowed; "
            "the page's forms have a handful"
        )


# -- waitress -----------------------------------------------------------------------------------


def _gated_parser(base: type[Any], gate: Gate) -> type[Any]:
    class GatedParser(base):  # type: ignore[misc,valid-type]  # waitress is untyped
        """waitress's parser that asks the gate once the headers are in, and again while a
        chunked body streams."""

        def __init__(self, adj: Any, channel: Any = None) -> None:
            super().__init__(adj)
            self._channel = channel
            self._limit: Limit | None = None

        def received(self, data: bytes) -> int:
            me: Any = self  # waitress's attributes are untyped
            if me.completed:
                return 0
            before = self.headers_finished
            consumed: int = super().received(data)
            if not before and self.headers_finished:
                self.headers.pop(WITHHELD_HEADER, None)  # only the gate sets it
                if me.body_rcv is not None and not self.error and not me.completed:
                    length = None if self.chunked else self.content_length
                    addr = getattr(self._channel, "addr", None)
                    client = str(addr[0]) if isinstance(addr, tuple) and addr else ""
                    reason = gate.verdict(self.command, self.path, self.headers, client, length)
                    if reason:
                        return self._withhold(reason, len(data))
                    if self.chunked:
                        self._limit = gate.limit(self.command, self.path, self.headers)
            elif self._limit is not None and self.body_bytes_received > self._limit.bytes:
                return self._withhold(TOO_LARGE, len(data))
            return consumed

        def _withhold(self, reason: str, datalen: int) -> int:
            """Complete the request without its body; the connection reads no further request
            (its bytes are the body's) and closes after the answer."""
            me: Any = self  # waitress's attributes are untyped
            if me.body_rcv is not None:
                me.body_rcv.getbuf().close()  # a chunked body's part already kept
            me.body_rcv = None
            me.headers[WITHHELD_HEADER] = reason
            me.headers["CONNECTION"] = "close"
            me.connection_close = True
            me.expect_continue = False  # never invite the body
            me.completed = True
            if self._channel is not None:
                self._channel.discarding = True
            return datalen  # this chunk's remaining bytes are the body's: dropped

    return GatedParser


def install_waitress(server: Any, app: Flask) -> None:
    """Put the gate in front of ``app`` on a waitress server from ``create_server`` (one
    listening socket): its channels' parsers ask the gate. Composes with a channel class
    another part of winserve has set on the server (it is subclassed, not replaced)."""
    gate = Gate(app)
    base_channel = server.channel_class
    parser = _gated_parser(base_channel.parser_class, gate)

    class GatedChannel(base_channel):  # type: ignore[misc,valid-type]  # waitress is untyped
        discarding = False  # a withheld body's bytes are arriving: drop them

        def parser_class(self, adj: Any) -> Any:
            return parser(adj, self)

        def received(self, data: bytes) -> bool:
            if self.discarding:
                return True
            accepted: bool = super().received(data)
            return accepted

    server.channel_class = GatedChannel

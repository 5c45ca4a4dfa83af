"""``WinserveFlask``: Flask, its per-request dispatch specialised for winserve's fixed hooks.

Every request runs the same hooks (hosts, auth, gate, observe, held, the prediction log), and
Flask finds them anew each time: the request's blueprints worked out from its endpoint, a dict
looked up per blueprint per kind of hook, each hook asked whether it is a coroutine, a signal
sent six times to no receiver, a null session made. None of that changes once the app has
answered its first request (Flask refuses new hooks and routes from then on), so here it is
worked out once per endpoint and kept; likewise the host part of the URL adapter (per Host
header) and the route a path matches (per path, method and scheme) (issue 29)::

    waitress ─► Flask.wsgi_app ─► RequestContext: create_url_adapter (the kept host part)
                                  └─ match_request ─► KeptMatches.match (a route found before)
                               ─► full_dispatch_request
                                    ├─ preprocess_request: Hooks(endpoint).url_values, .before
                                    ├─ dispatch_request: the view (Flask's own)
                                    └─ finalize_request ─► process_response: after_this_request
                                                           functions, Hooks(endpoint).after
                                  RequestContext.pop ─► do_teardown_request: .teardown

The order is Flask's own: the app's hooks and each blueprint's, outermost first before the
view, innermost first after it; after-request and teardown functions in reverse order of
registration. A signal is still sent when something listens to it. The specialisation is
written against Flask 3.0 and 3.1 (it reads the request context's ``after_this_request``
list as Flask does); under any other version the app dispatches with Flask's own methods.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import version
from itertools import chain
from typing import Any, NamedTuple

from flask import Flask, Request, Response, request_finished, request_started
from flask.globals import request_ctx
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask.signals import request_tearing_down
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter

# the Flask versions whose dispatch this specialises (their process_response reads the request
# context's _after_request_functions, and their hooks live in the dicts read below)
SPECIALISED = ("3.0.", "3.1.")
_UNSET: Any = object()  # do_teardown_request's "find the exception yourself"
# URL adapters kept, by what of the environ Flask's depends on besides the path, method and
# query (the Host header, mostly): any client may send any Host, so bounded
ADAPTERS_KEPT = 64
MATCHES_KEPT = 1024  # routes matched, by path, method and scheme (a stranger's paths: bounded)
# what of the WSGI environ werkzeug's bind_to_environ reads, besides the path, method and query
ADAPTER_KEYS = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "HTTP_CONNECTION",
    "HTTP_UPGRADE",
    "SCRIPT_NAME",
)


def specialised(flask_version: str | None = None) -> bool:
    """Whether this Flask is one the specialised dispatch was written against."""
    found = flask_version if flask_version is not None else version("flask")
    return found.startswith(SPECIALISED)


def _decoded(text: str) -> str:
    """A WSGI string (bytes as latin-1) as werkzeug reads it: UTF-8, bad bytes replaced."""
    return text.encode("latin1").decode(errors="replace")


class KeptMatches(MapAdapter):
    """werkzeug's adapter, finding a request's route among the routes found before (by path,
    method and scheme: ~0.5 µs, where matching costs ~4) once the app is set up (Flask
    refuses new routes from then on). Only routes found are kept: a 404, a 405 or a redirect
    is worked out each time, as werkzeug does."""

    kept: dict[tuple[str, str, str], tuple[Any, Any]]
    keep = False

    def match(  # type: ignore[override]  # werkzeug's overloads, one body
        self,
        path_info: str | None = None,
        method: str | None = None,
        return_rule: bool = False,
        query_args: Any = None,
        websocket: bool | None = None,
    ) -> tuple[Any, Any]:
        if path_info is not None or method is not None or websocket is not None or not return_rule:
            general: tuple[Any, Any] = super().match(
                path_info,
                method,
                return_rule,  # type: ignore[call-overload]
                query_args,
                websocket,
            )
            return general
        key = (self.path_info, self.default_method, self.url_scheme)
        found = self.kept.get(key)
        if found is None:
            found = super().match(return_rule=True, query_args=query_args)
            if self.keep and len(self.kept) < MATCHES_KEPT:
                self.kept[key] = found
        rule, values = found
        return rule, dict(values)  # the request's own: url_value_preprocessors pop from it


class Hooks(NamedTuple):
    """The functions Flask runs around one endpoint's view, in the order it runs them."""

    url_values: tuple[Callable[..., Any], ...]
    before: tuple[Callable[..., Any], ...]
    after: tuple[Callable[..., Any], ...]
    teardown: tuple[Callable[..., Any], ...]


def hooks_of(app: Flask, blueprints: list[str]) -> Hooks:
    """What Flask's preprocess_request, process_response and do_teardown_request would run
    for a request of these blueprints (innermost first, as ``Request.blueprints``)."""
    outer_first = (None, *reversed(blueprints))
    inner_first = (*blueprints, None)
    return Hooks(
        tuple(f for n in outer_first for f in app.url_value_preprocessors.get(n, ())),
        tuple(f for n in outer_first for f in app.before_request_funcs.get(n, ())),
        tuple(f for n in inner_first for f in reversed(app.after_request_funcs.get(n, []))),
        tuple(f for n in inner_first for f in reversed(app.teardown_request_funcs.get(n, []))),
    )


class NoSessions(SecureCookieSessionInterface):
    """winserve keeps nothing in Flask's session (its login cookie is its own, auth.py): every
    request gets the same null session, which refuses writes, instead of a new one each."""

    def __init__(self) -> None:
        self._null: SessionMixin | None = None

    def make_null_session(self, app: Flask) -> Any:
        if self._null is None:
            self._null = super().make_null_session(app)
        return self._null


class WinserveFlask(Flask):
    """Flask, minus per-request costs winserve does not use (issue 14, issue 29): the
    coroutine check of every view and hook (winserve has no async ones; tests/test_hot_path.py
    checks), and finding the hooks anew for each request (see the module's docstring)."""

    session_interface = NoSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hooks: dict[str | None, Hooks] = {}  # by endpoint; only once setup is finished
        self._adapters: dict[tuple[Any, ...], tuple[str, MapAdapter]] = {}
        self._matches: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._specialised = specialised()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func

    def hooks_for(self, req: Request) -> Hooks:
        """The hooks of this request's endpoint (worked out once the app is set up)."""
        endpoint = req.endpoint
        found = self._hooks.get(endpoint)
        if found is None:
            found = hooks_of(self, req.blueprints)
            if self._got_first_request:  # no hook can be added from now on (Flask refuses)
                self._hooks[endpoint] = found
        return found

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        """Flask's adapter, its host part (the Host header's name, checked and IDNA-encoded,
        ~5 µs) worked out once per Host header seen (and the rest of what werkzeug reads);
        the path, method and query are the request's own, decoded as werkzeug does."""
        config = self.config
        if (
            request is None
            or not self._specialised
            or config["SERVER_NAME"] is not None
            or config.get("TRUSTED_HOSTS") is not None
            or self.url_map.host_matching
            or self.subdomain_matching
        ):
            return super().create_url_adapter(request)
        environ = request.environ
        key = tuple(map(environ.get, ADAPTER_KEYS))
        known = self._adapters.get(key)
        if known is None:
            adapter = super().create_url_adapter(request)  # a bad Host: 400, as Flask's
            if adapter is not None and len(self._adapters) < ADAPTERS_KEPT:
                self._adapters[key] = (request.host, adapter)
            return adapter
        host, adapter = known
        request.host = host  # type: ignore[misc]  # as Flask's sets it (a cached property)
        path = environ.get("PATH_INFO")
        query = environ.get("QUERY_STRING")
        made = KeptMatches(
            self.url_map,
            adapter.server_name,
            adapter.script_name,
            adapter.subdomain,
            adapter.url_scheme,
            _decoded(path) if path is not None else "/",
            environ["REQUEST_METHOD"],
            _decoded(query) if query is not None else None,
        )
        made.kept = self._matches
        made.keep = self._got_first_request
        return made

    def full_dispatch_request(self) -> Response:
        if not self._specialised:
            return super().full_dispatch_request()
        self._got_first_request = True
        try:
            if request_started.receivers:
                request_started.send(self, _async_wrapper=self.ensure_sync)
            rv = self.preprocess_request()
            if rv is None:
                rv = self.dispatch_request()
        except Exception as e:
            rv = self.handle_user_exception(e)
        return self.finalize_request(rv)

    def finalize_request(
        self, rv: ResponseReturnValue | HTTPException, from_error_handler: bool = False
    ) -> Response:
        if not self._specialised or request_finished.receivers:
            return super().finalize_request(rv, from_error_handler)
        response = self.make_response(rv)
        try:
            response = self.process_response(response)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed with an error while handling an error")
        return response

    def preprocess_request(self) -> ResponseReturnValue | None:
        if not self._specialised:
            return super().preprocess_request()
        req = request_ctx.request
        hooks = self.hooks_for(req)
        if hooks.url_values:
            endpoint, values = req.endpoint, req.view_args
            for url_func in hooks.url_values:
                url_func(endpoint, values)
        for before in hooks.before:
            rv = before()
            if rv is not None:
                return rv  # type: ignore[no-any-return]
        return None

    def process_response(self, response: Response) -> Response:
        if not self._specialised:
            return super().process_response(response)
        ctx = request_ctx._get_current_object()  # type: ignore[attr-defined]
        for func in chain(ctx._after_request_functions, self.hooks_for(ctx.request).after):
            response = func(response)
        session = ctx._session
        if not self.session_interface.is_null_session(session):
            self.session_interface.save_session(self, session, response)
        return response

    def do_teardown_request(self, exc: BaseException | None = _UNSET) -> None:
        if not self._specialised:
            if exc is _UNSET:
                super().do_teardown_request()
            else:
                super().do_teardown_request(exc)
            return
        if exc is _UNSET:
            exc = sys.exc_info()[1]
        for func in self.hooks_for(request_ctx.request).teardown:
            func(exc)
        if request_tearing_down.receivers:
            request_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

"""winserve's specialised request dispatch (web/dispatch.py) and one-send answers
(connections.py) behave as Flask's and waitress's own (issue 29).

The hooks run in Flask's order, a hook's answer or error ends the request as Flask's would,
signals still reach their receivers, and under a Flask it was not written for the app uses
Flask's own methods. On a real server the checks every route runs (Host, token, CSRF, the
protocols' error shapes, security headers, request ids) still apply, and a small answer leaves
in one piece.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Blueprint, Flask, after_this_request, request_finished, request_started
from flask.signals import request_tearing_down

from tests.helpers import ServerProcess, running_server
from winserve.web.dispatch import WinserveFlask, specialised

TOKEN = "dispatch-token"
ROW = {"a": 1, "b": 2}


def hooked_app(cls: type[Flask], calls: list[str]) -> Flask:
    """An app with hooks at every level Flask has: the app, a blueprint, a nested one, two
    of each kind (their order matters), and a view that adds an after_this_request."""
    app = cls(__name__)
    outer = Blueprint("outer", __name__)
    inner = Blueprint("inner", __name__)

    def hooks(owner: Any, name: str) -> None:
        for n in (1, 2):

            def before(n: int = n) -> None:
                calls.append(f"before {name} {n}")

            def after(response: Any, n: int = n) -> Any:
                calls.append(f"after {name} {n}")
                return response

            def teardown(exc: BaseException | None, n: int = n) -> None:
                calls.append(f"teardown {name} {n} {type(exc).__name__}")

            def values(endpoint: str | None, args: dict[str, Any] | None, n: int = n) -> None:
                calls.append(f"values {name} {n} {endpoint} {sorted(args or {})}")

            owner.before_request(before)
            owner.after_request(after)
            owner.teardown_request(teardown)
            owner.url_value_preprocessor(values)

    hooks(app, "app")
    hooks(outer, "outer")
    hooks(inner, "inner")

    @inner.get("/view/<thing>")
    def view(thing: str) -> str:
        def later(response: Any) -> Any:
            calls.append("after_this_request")
            return response

        after_this_request(later)
        if thing == "fail":
            raise RuntimeError("view failed")
        return f"thing {thing}"

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    @app.errorhandler(RuntimeError)
    def failed(exc: RuntimeError) -> tuple[str, int]:
        calls.append("error handler")
        return "failed", 500

    outer.register_blueprint(inner, url_prefix="/inner")
    app.register_blueprint(outer, url_prefix="/outer")
    return app


@pytest.mark.parametrize("path", ["/outer/inner/view/x", "/outer/inner/view/fail", "/plain"])
def test_hooks_run_in_flasks_order(path: str) -> None:
    answers = {}
    for cls in (Flask, WinserveFlask):
        calls: list[str] = []
        client = hooked_app(cls, calls).test_client()
        for _ in range(3):  # the first request and the later ones (hooks kept per endpoint)
            calls.clear()
            response = client.get(path)
            answers[cls.__name__] = (response.status_code, response.data, list(calls))
    assert answers["WinserveFlask"] == answers["Flask"]
    status, _, calls = answers["Flask"]
    assert calls[0] == "values app 1 " + (
        "plain []" if path == "/plain" else "outer.inner.view ['thing']"
    )
    assert status == (500 if "fail" in path else 200)


def test_a_hooks_answer_ends_the_request_as_flasks_would() -> None:
    def refuse() -> tuple[str, int]:
        return "refused", 403

    for cls in (Flask, WinserveFlask):
        calls: list[str] = []
        app = hooked_app(cls, calls)
        app.before_request(refuse)
        response = app.test_client().get("/outer/inner/view/x")
        assert (response.status_code, response.data) == (403, b"refused")
        assert not [c for c in calls if c.startswith("before outer") or c == "after_this_request"]
        assert "after app 1" in calls and "teardown app 1 NoneType" in calls


def test_signals_still_reach_their_receivers() -> None:
    got: list[str] = []

    def started(sender: Any, **extra: Any) -> None:
        got.append("started")

    def finished(sender: Any, response: Any, **extra: Any) -> None:
        got.append(f"finished {response.status_code}")

    def tearing_down(sender: Any, exc: BaseException | None = None, **extra: Any) -> None:
        got.append("tearing down")

    app = hooked_app(WinserveFlask, [])
    with (
        request_started.connected_to(started, app),
        request_finished.connected_to(finished, app),
        request_tearing_down.connected_to(tearing_down, app),
    ):
        assert app.test_client().get("/plain").status_code == 200
    assert got == ["started", "finished 200", "tearing down"]


def test_another_flask_dispatches_with_flasks_own_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    assert specialised("3.1.3") and specialised("3.0.0")
    assert not specialised("3.2.0") and not specialised("4.0")
    flask_calls: list[str] = []
    hooked_app(Flask, flask_calls).test_client().get("/outer/inner/view/fail")
    monkeypatch.setattr("winserve.web.dispatch.specialised", lambda: False)
    calls: list[str] = []
    app = hooked_app(WinserveFlask, calls)
    assert not app._specialised  # type: ignore[attr-defined]
    hooks_for: Callable[..., Any] = app.hooks_for  # type: ignore[attr-defined]
    monkeypatch.setattr(app, "hooks_for", lambda *a: pytest.fail("specialised path taken"))
    app.test_client().get("/outer/inner/view/fail")
    assert calls == flask_calls and hooks_for


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_HOST": "127.0.0.1:8000"},
        {"HTTP_HOST": "LocalHost:8000", "QUERY_STRING": "proba=true&x=%C3%A9"},
        {"HTTP_HOST": "b\u00fccher.example", "PATH_INFO": "/outer/inner/view/\u00c3\u00a9"},
        {"SCRIPT_NAME": "/prefix", "wsgi.url_scheme": "https", "SERVER_PORT": "443"},
        {"HTTP_CONNECTION": "keep-alive, Upgrade", "HTTP_UPGRADE": "websocket"},
        {"HTTP_HOST": "[::1]:9000", "PATH_INFO": "/plain", "REQUEST_METHOD": "POST"},
    ],
)
def test_url_adapters_are_flasks(environ: dict[str, str]) -> None:
    """The adapter made from the kept host part matches Flask's own, field by field, for the
    first request of a Host and the later ones."""
    from werkzeug.test import EnvironBuilder

    def adapter_of(app: Flask, env: dict[str, Any]) -> tuple[Any, ...]:
        request = app.request_class(env)
        made = app.create_url_adapter(request)
        assert made is not None
        fields = ("server_name", "script_name", "subdomain", "url_scheme", "path_info")
        return (
            *(getattr(made, f) for f in fields),
            made.default_method,
            made.query_args,
            request.host,
        )

    base = EnvironBuilder(path="/outer/inner/view/x").get_environ()
    for path in ("/outer/inner/view/x", "/plain"):
        env = {**base, "PATH_INFO": path, **environ}
        theirs = adapter_of(hooked_app(Flask, []), dict(env))
        ours = hooked_app(WinserveFlask, [])
        for _ in range(3):
            assert adapter_of(ours, dict(env)) == theirs


def routed_app(cls: type[Flask]) -> Flask:
    """Routes of every kind a match can end in: found (with values), a redirect to the path
    with a slash, 404 and 405; a url_value_preprocessor pops a value, as held.py does."""
    app = cls(__name__)
    taken: list[Any] = []

    @app.url_value_preprocessor
    def take(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "model" in values:
            taken.append(values.pop("model"))

    @app.route("/models/<model>/predict", methods=["POST"])
    def predict() -> str:
        return f"predict {taken[-1]}"

    @app.get("/items/<int:n>")
    def item(n: int) -> str:
        return f"item {n + 1}"

    @app.get("/folder/")
    def folder() -> str:
        return "folder"

    return app


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/models/iris/predict"),
        ("POST", "/models/b%C3%BCcher/predict"),
        ("POST", "/models/a%2Fb/predict"),
        ("GET", "/models/iris/predict"),
        ("GET", "/items/41"),
        ("HEAD", "/items/41"),
        ("GET", "/items/x"),
        ("GET", "/folder"),
        ("GET", "/folder/"),
        ("GET", "/nowhere"),
    ],
)
def test_routes_found_again_are_found_as_werkzeug_finds_them(method: str, path: str) -> None:
    answers: dict[str, list[tuple[int, bytes, str | None]]] = {}
    for cls in (Flask, WinserveFlask):
        client = routed_app(cls).test_client()
        answers[cls.__name__] = [
            (r.status_code, r.data, r.headers.get("Location"))
            for r in (client.open(path, method=method) for _ in range(4))
        ]
    assert answers["WinserveFlask"] == answers["Flask"]


def test_a_redirect_names_the_requests_own_host() -> None:
    app = WinserveFlask(__name__)

    @app.get("/folder/")
    def folder() -> str:
        return "folder"

    client = app.test_client()
    for host in ("one.example", "two.example:8080", "one.example"):
        moved = client.get("/folder", headers={"Host": host})
        assert moved.status_code == 308 and moved.headers["Location"] == f"http://{host}/folder/"


def test_the_null_session_refuses_writes() -> None:
    from flask import session

    app = WinserveFlask(__name__)

    @app.get("/write")
    def write() -> str:
        session["x"] = 1
        return "written"

    assert app.test_client().get("/write").status_code == 500  # no secret key: Flask refuses


# -- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = ["--factory", "tests.models:chaos", "--token", TOKEN]
    with running_server(args, cwd=tmp_path_factory.mktemp("dispatch")) as server:
        yield server


def raw_exchange(url: str, request: bytes) -> bytes:
    """The bytes of the first ``recv`` after sending ``request`` on a fresh connection."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(65536)


@pytest.mark.server
@pytest.mark.spawn
def test_every_routes_checks_apply_on_a_real_server(guarded_server: ServerProcess) -> None:
    url = guarded_server.url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ok = requests.post(f"{url}/predict", json=ROW, headers=auth, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"predictions": [3.0]}
    assert ok.headers["X-Content-Type-Options"] == "nosniff"
    assert ok.headers["X-Frame-Options"] == "DENY"
    assert len(ok.headers["X-Request-Id"]) == 16
    given = requests.post(
        f"{url}/predict", json=ROW, headers={**auth, "X-Request-Id": "mine-1"}, timeout=10
    )
    assert given.headers["X-Request-Id"] == "mine-1"

    none = requests.post(f"{url}/predict", json=ROW, timeout=10)
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    mlflow = requests.post(f"{url}/invocations", json={"instances": [[1, 2]]}, timeout=10)
    assert mlflow.status_code == 401 and set(mlflow.json()) == {"error_code", "message"}

    port = url.rsplit(":", 1)[1]
    evil = requests.post(
        f"{url}/predict", json=ROW, headers={**auth, "Host": f"evil.example:{port}"}, timeout=10
    )
    assert evil.status_code == 400 and evil.json()["error"]["code"] == "host_not_allowed"

    missing = requests.get(f"{url}/v2/models/nowhere", headers=auth, timeout=10)
    assert missing.status_code == 404 and set(missing.json()) == {"error"}
    wrong = requests.get(f"{url}/predict", headers=auth, timeout=10)
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    json_type = {**auth, "Content-Type": "application/json"}
    bad = requests.post(f"{url}/predict", data=b"[1,", headers=json_type, timeout=10)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]

    # a page's form without the form value (the login cookie instead of the token)
    form = requests.post(
        f"{url}/jobs",
        files={"file": ("rows.csv", b"a,b\n1,2\n")},
        headers={**auth, "Origin": "http://evil.example"},
        timeout=10,
    )
    assert form.status_code == 403 and form.json()["error"]["code"] == "csrf_failed"


@pytest.mark.server
@pytest.mark.spawn
def test_a_small_answer_leaves_in_one_piece(guarded_server: ServerProcess) -> None:
    """Head and body in one send: the first read has the whole answer (waitress sent the head
    and the body apart, and a client waiting on its socket woke up to the head alone)."""
    body = b'{"a": 1, "b": 2}'
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    for _ in range(5):
        answer = raw_exchange(guarded_server.url, head + body)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b'\r\n\r\n{"predictions":[3.0]}\n'), answer
    head = f"HEAD /model HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    empty = raw_exchange(guarded_server.url, head.encode())
    assert empty.startswith(b"HTTP/1.1 200 OK\r\n") and empty.endswith(b"\r\n\r\n")


def test_answers_of_every_kind_are_sent_whole(tmp_path: Path) -> None:
    """waitress with one-send tasks, in this process: a small answer, a large one (sent as
    waitress does), a streamed one (chunked), an empty one, and one written by ``write``."""
    import threading

    from waitress import wasyncore

    from winserve.connections import ONE_SEND_BYTES, ConnectionLimits, create_server

    big = b"x" * (ONE_SEND_BYTES * 3 + 7)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"one,", b"two,", b"three"])
        if path == "/empty":
            start_response("204 No Content", [])
            return [b""]
        if path == "/write":
            write = start_response("200 OK", [("Content-Length", "9")])
            write(b"written, ")
            return []
        answer = big if path == "/big" else b"small"
        start_response("200 OK", [("Content-Length", str(len(answer)))])
        return [answer]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = create_server(app, sock, ConnectionLimits(), ident="winserve")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            wasyncore.poll(0.1, server._map)
        wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown()

    thread = threading.Thread(target=loop, name="one-send-loop")
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with requests.Session() as session:  # one keep-alive connection for all of them
            for _ in range(2):
                assert session.get(f"{url}/small", timeout=10).content == b"small"
                assert session.get(f"{url}/big", timeout=10).content == big
                streamed = session.get(f"{url}/stream", timeout=10)
                assert streamed.content == b"one,two,three"
                assert streamed.headers["Transfer-Encoding"] == "chunked"
                assert session.get(f"{url}/empty", timeout=10).status_code == 204
                assert session.get(f"{url}/write", timeout=10).content == b"written, "
    finally:
        stop.set()
        thread.join(10)


def test_the_app_cpu_bench_measures_the_real_app(tmp_path: Path) -> None:
    """bench/app_cpu.py serves its POST /predict through the whole app (hooks, view, the
    prediction log's hook), and counts the calls of one request."""
    from tests.helpers import bench_script

    bench = bench_script("app_cpu")
    app, body = bench.make_app(tmp_path, True)
    base = bench.environ(body, {})
    status, data = bench.call(app, base, body)
    assert status.startswith("200") and data == b'{"predictions":[0]}\n'
    assert bench.per_call(app, base, body, 20) > 0
    counted = bench.calls_by_package(app, base, body)
    assert counted["winserve"] > 0 and counted["flask"] > 0
    assert app.extensions["winserve.prediction_log"].entries == 22  # every request logged

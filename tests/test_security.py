"""Safe on a shared network: the token, security headers, the model-file pin, LAN guard."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from tests.helpers import ServerProcess, local_client, model_hosts, running_server, wait_until
from winserve import cli, settings
from winserve.errors import SettingsError
from winserve.host import ModelHost
from winserve.model_info import ModelSpec
from winserve.web import auth, paths
from winserve.web.throttle import Throttle, client_key

TOKEN = "correct horse battery"
ROW = {"a": 1, "b": 2}


def _client(token: str = TOKEN) -> FlaskClient:
    return local_client(ModelSpec(factory="tests.models:chaos"), token=token)


@pytest.fixture
def guarded() -> Iterator[FlaskClient]:
    yield _client()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer ", TOKEN])
def test_api_needs_the_right_bearer_token(guarded: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (("post", "/predict"), ("get", "/model"), ("get", "/nowhere")):
        response = getattr(guarded, method)(path, json=ROW, headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
        message = response.json["error"]["message"]
        if header == "Bearer wrong-token":  # a wrong token is told apart from none
            assert "the token sent is not this server's" in message
        else:
            assert "Authorization: Bearer" in message
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_right_token_is_let_in(guarded: FlaskClient) -> None:
    ok = guarded.post("/predict", json=ROW, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json == {"predictions": [3.0]}
    lower = guarded.get("/model", headers={"Authorization": f"bearer {TOKEN}"})
    assert lower.status_code == 200


def test_the_comparison_is_constant_time(
    guarded: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    guarded.get("/model", headers={"Authorization": "Bearer nope-nope"})
    assert calls == [(b"nope-nope", TOKEN.encode())]


def test_health_stays_open(guarded: FlaskClient) -> None:
    for path in (
        "/health",
        "/ping",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/chaos/ready",
    ):
        assert guarded.get(path).status_code == 200, path
    for path in ("/metrics", "/openapi.json", "/v2", "/v2/models/chaos"):
        assert guarded.get(path).status_code == 401, path


def test_the_login_page_is_styled_without_the_token(guarded: FlaskClient) -> None:
    page = guarded.get("/login").get_data(as_text=True)
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        with guarded.get(asset) as response:
            assert response.status_code == 200, asset
            assert response.mimetype in {"text/css", "text/javascript"}, asset
    assert "/static/winserve.css" in page


def test_each_protocol_refuses_in_its_own_shape(guarded: FlaskClient) -> None:
    oip = guarded.post("/v2/models/chaos/infer", json={"inputs": []})
    assert oip.status_code == 401 and set(oip.json) == {"error"}
    assert "Authorization: Bearer" in oip.json["error"]
    mlflow = guarded.post("/invocations", json={"instances": [[1, 2]]})
    assert mlflow.status_code == 401
    assert mlflow.json["error_code"] == "UNAUTHENTICATED" and "Bearer" in mlflow.json["message"]


def test_the_page_asks_once_then_remembers(guarded: FlaskClient) -> None:
    page = guarded.get("/")
    assert page.status_code == 303 and page.headers["Location"].startswith("/login?next=/")
    form = guarded.get("/login?next=/")
    assert form.status_code == 200 and 'type="password"' in form.get_data(as_text=True)
    wrong = guarded.post("/login", data={"token": "guess", "next": "/"})
    assert wrong.status_code == 401 and "not right" in wrong.get_data(as_text=True)
    right = guarded.post("/login", data={"token": TOKEN, "next": "/"})
    assert right.status_code == 303 and right.headers["Location"] == "/"
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    page = guarded.get("/api")  # the examples there send the token, and say where to put it
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Authorization: Bearer $WINSERVE_TOKEN" in text
    assert "$env:WINSERVE_TOKEN = " in text and TOKEN not in text
    assert guarded.post("/predict", json=ROW).status_code == 200  # the cookie works for the API


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil", ""])
def test_login_never_redirects_off_site(guarded: FlaskClient, target: str) -> None:
    response = guarded.post("/login", data={"token": TOKEN, "next": target})
    assert response.headers["Location"] == "/"


def test_security_headers_and_no_version_banner() -> None:
    client = _client(token="")
    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    api = client.post("/predict", json=ROW)
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in api.headers
    assert "<script>" not in page.get_data(as_text=True)  # the CSP forbids inline script


def test_token_from_file_and_environment(tmp_path: Path) -> None:
    secret = tmp_path / "token.txt"
    secret.write_text("from-a-file-123\n", encoding="utf-8")
    chosen = settings.load(cli.parse(["--token-file", str(secret)]), env={}, cwd=tmp_path)
    assert chosen.token == "from-a-file-123"
    assert settings.load({}, env={"WINSERVE_TOKEN": "from-env-123"}, cwd=tmp_path).token == (
        "from-env-123"
    )
    with pytest.raises(SettingsError, match="token is too short"):
        settings.load(cli.parse(["--token", "abc"]), env={}, cwd=tmp_path)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(SettingsError, match="is empty"):
        settings.load(cli.parse(["--token-file", "empty.txt"]), env={}, cwd=tmp_path)


def test_lan_without_token_can_be_refused(tmp_path: Path) -> None:
    argv = ["--host", "0.0.0.0", "--require-token-on-lan"]
    with pytest.raises(SettingsError, match="set a token"):
        settings.load(cli.parse(argv), env={}, cwd=tmp_path)
    assert settings.load(cli.parse([*argv, "--token", TOKEN]), env={}, cwd=tmp_path).binds_lan
    assert not settings.load(cli.parse(["--require-token-on-lan"]), env={}, cwd=tmp_path).token


def test_a_pinned_model_file_is_checked_before_loading(tmp_path: Path, iris_forest: Path) -> None:
    from winserve.model_file import sha256_of

    digest = sha256_of(iris_forest)
    assert ModelHost().load(ModelSpec(str(iris_forest), sha256=digest))["ok"]
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(
        b"\x80\x04cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    )
    record = ModelHost().load(ModelSpec(str(evil), sha256=digest))
    assert not record["ok"] and "not the pinned" in record["error"]["message"]
    assert "model_sha256" in record["error"]["message"]
    assert not (tmp_path / "pwned").exists()  # refused before unpickling
    with pytest.raises(SettingsError, match="64 hexadecimal digits"):
        settings.load(cli.parse(["--model-sha256", "abc"]), env={}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="give the model file too"):
        settings.load(cli.parse(["--model-sha256", digest]), env={}, cwd=tmp_path)


# -- against a real server (issue 13: DNS rebinding, open redirect, token guessing, paths) -------

PAGE_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _predicts(url: str, headers: dict[str, str] | None = None) -> None:
    ok = requests.post(f"{url}/predict", json=ROW, headers=headers or {}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"predictions": [3.0]}, ok.text


def _no_traceback(server: ServerProcess) -> None:
    console = server.drain(0.3)
    assert "Traceback" not in console and "failed" not in console, console[-2000:]


@pytest.mark.server
@pytest.mark.spawn
def test_a_page_that_rebinds_its_name_to_this_server_is_refused(tmp_path: Path) -> None:
    with running_server(["--factory", "tests.models:chaos"], cwd=tmp_path) as server:
        port = server.url.rsplit(":", 1)[1]
        evil = {"Host": f"evil.example:{port}"}
        native = requests.get(f"{server.url}/model", headers=evil, timeout=10)
        assert native.status_code == 400
        assert native.json()["error"]["code"] == "host_not_allowed"
        assert "'evil.example'" in native.json()["error"]["message"]
        assert "allowed_hosts" in native.json()["error"]["message"]
        oip = requests.get(f"{server.url}/v2/models/chaos", headers=evil, timeout=10)
        assert oip.status_code == 400 and set(oip.json()) == {"error"}
        assert "allowed_hosts" in oip.json()["error"]
        mlflow = requests.post(
            f"{server.url}/invocations", json={"instances": [[1, 2]]}, headers=evil, timeout=10
        )
        assert mlflow.status_code == 400 and mlflow.json()["error_code"] == "BAD_REQUEST"
        assert "allowed_hosts" in mlflow.json()["message"]
        for path in ("/", "/metrics", "/predict"):
            refused = requests.get(f"{server.url}{path}", headers=evil, timeout=10)
            assert refused.status_code == 400 and "allowed_hosts" in refused.text, path
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST."):
            ok = requests.get(f"{server.url}/model", headers={"Host": host}, timeout=10)
            assert ok.status_code == 200, host

        # no Content-Type: no CORS preflight for a page's fetch(), so a browser's is refused;
        # Triton's client sends none (tests/test_oip.py), so a program's is read
        infer = f"{server.url}/v2/models/chaos/infer"
        tensors = {
            "inputs": [
                {"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in ROW.items()
            ]
        }
        body = json.dumps(tensors).encode()
        for browser in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            response = requests.post(infer, data=body, headers=browser, timeout=10)
            assert response.status_code == 415 and set(response.json()) == {"error"}
            assert "Content-Type: application/json" in response.json()["error"]
        program = requests.post(infer, data=body, timeout=10)
        assert program.status_code == 200 and program.json()["outputs"][0]["data"] == [3.0]
        _predicts(server.url)
        _no_traceback(server)


def test_allowed_hosts_and_the_machines_own_names_on_the_network(tmp_path: Path) -> None:
    lan = _client(token="")
    assert lan.get("/model", headers={"Host": socket.gethostname()}).status_code == 400
    spec = ModelSpec(factory="tests.models:chaos")
    lan = local_client(spec, host="0.0.0.0", allowed_hosts=("models.example", ".corp.example"))
    for name in (socket.gethostname(), "models.example:80", "a.b.corp.example", "corp.example"):
        assert lan.get("/model", headers={"Host": name}).status_code == 200, name
    for name in ("evil.example", "models.example.evil", "evilcorp.example"):
        assert lan.get("/model", headers={"Host": name}).status_code == 400, name
    anything = local_client(spec, allowed_hosts=("*",))
    assert anything.get("/model", headers={"Host": "evil.example"}).status_code == 200
    chosen = settings.load(
        cli.parse(["--allowed-hosts", "Models.Example, [fe80::1]"]), env={}, cwd=tmp_path
    )
    assert chosen.allowed_hosts == ("models.example", "[fe80::1]")
    (tmp_path / "winserve.toml").write_text('allowed_hosts = ["a.example", "b.example"]\n')
    assert settings.load({}, env={}, cwd=tmp_path).allowed_hosts == ("a.example", "b.example")
    with pytest.raises(SettingsError, match="allowed_hosts: expected a host name without"):
        settings.load({}, env={"WINSERVE_ALLOWED_HOSTS": "http://a.example/"}, cwd=tmp_path)


@pytest.mark.server
@pytest.mark.spawn
def test_login_never_sends_anyone_off_site_nor_fails(tmp_path: Path) -> None:
    token = TOKEN.replace(" ", "+")
    with running_server(["--factory", "tests.models:chaos", "--token", TOKEN], cwd=tmp_path) as s:
        for target in (
            "/%09/evil.example/",
            "/%0a/evil.example/",
            "/%0d%0aSet-Cookie:%20x=1",
            "%5C%5Cevil.example",
            "/%5Cevil.example",
            "%20//evil.example",
            "https://evil.example/",
        ):
            response = requests.post(
                f"{s.url}/login",
                data=f"token={token}&next={target}",
                headers=PAGE_FORM,
                allow_redirects=False,
                timeout=10,
            )
            assert response.status_code == 303, (target, response.text[:300])
            assert response.headers["Location"] == "/", target
            form = requests.get(f"{s.url}/login?next={target}", timeout=10)
            assert form.status_code == 200 and 'name="next" value="/"' in form.text, target
        # a path with a line break in it, asked for without the cookie: the way to the login
        # page and back keeps it percent-encoded, never a header break
        page = requests.get(f"{s.url}/jobs/%0d%0aSet-Cookie:x=1", allow_redirects=False, timeout=10)
        assert page.status_code == 303 and "x=1" not in page.headers.get("Set-Cookie", "")
        login = requests.get(f"{s.url}{page.headers['Location']}", timeout=10)
        back = re.search(r'name="next" value="([^"]+)"', login.text)
        assert login.status_code == 200 and back is not None
        assert back.group(1) == "/jobs/%0D%0ASet-Cookie:x=1"
        done = requests.post(
            f"{s.url}/login",
            data={"token": TOKEN, "next": back.group(1)},
            allow_redirects=False,
            timeout=10,
        )
        assert done.status_code == 303 and done.headers["Location"] == back.group(1)
        assert requests.get(f"{s.url}/jobs/%0d%0a", headers=BEARER, timeout=10).status_code == 404
        _predicts(s.url, BEARER)
        _no_traceback(s)


def _from(source: str, url: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A GET from another loopback address (a second client, as far as the server knows)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


@pytest.mark.server
@pytest.mark.spawn
def test_token_guessing_is_throttled_and_the_cookie_is_per_start(tmp_path: Path) -> None:
    args = ["--factory", "tests.models:chaos", "--token", TOKEN]
    with running_server(args, cwd=tmp_path) as server:
        url = server.url
        for n in range(5):  # typing mistakes cost nothing
            wrong = requests.get(
                f"{url}/model", headers={"Authorization": f"Bearer no{n}"}, timeout=10
            )
            assert wrong.status_code == 401, n
        locked = requests.get(f"{url}/model", headers={"Authorization": "Bearer no5"}, timeout=10)
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "too_many_attempts"
        assert "try again in" in locked.json()["error"]["message"]
        wait = int(locked.headers["Retry-After"])
        assert 1 <= wait <= 2
        # while locked out not even the right token is compared: a guesser learns nothing
        assert requests.get(f"{url}/model", headers=BEARER, timeout=10).status_code == 429
        oip = requests.get(f"{url}/v2", headers={"Authorization": "Bearer x"}, timeout=10)
        assert oip.status_code == 429 and set(oip.json()) == {"error"}
        form = requests.post(f"{url}/login", data={"token": TOKEN, "next": "/"}, timeout=10)
        assert form.status_code == 429 and "try again in" in form.text
        assert "Retry-After" in form.headers
        # another address is not held up by this one's guesses
        assert _from("127.0.0.2", url, "/model", BEARER)[0] == 200
        time.sleep(wait + 0.2)
        _predicts(url, BEARER)
        assert requests.get(
            f"{url}/model", headers={"Authorization": "Bearer no"}, timeout=10
        ).status_code == (
            401  # the right token forgot the earlier failures
        )

        first = requests.post(
            f"{url}/login", data={"token": TOKEN, "next": "/"}, allow_redirects=False, timeout=10
        )
        second = requests.post(
            f"{url}/login", data={"token": TOKEN, "next": "/"}, allow_redirects=False, timeout=10
        )
        cookie = first.cookies[auth.SESSION_COOKIE]
        assert cookie != second.cookies[auth.SESSION_COOKIE]
        assert f"Max-Age={auth.SESSION_SECONDS}" in first.headers["Set-Cookie"]
        assert TOKEN not in first.headers["Set-Cookie"]
        old_style = hmac.new(TOKEN.encode(), b"winserve web session", hashlib.sha256).hexdigest()
        for value, status in (
            (cookie, 200),
            (old_style, 401),
            (cookie[:-1] + ("1" if cookie[-1] == "0" else "0"), 401),
        ):
            answer = requests.get(f"{url}/model", cookies={auth.SESSION_COOKIE: value}, timeout=10)
            assert answer.status_code == status, value
        _no_traceback(server)
    with running_server(args, cwd=tmp_path) as restarted:
        again = requests.get(
            f"{restarted.url}/model", cookies={auth.SESSION_COOKIE: cookie}, timeout=10
        )
        assert again.status_code == 401  # a new start, a new key: the old cookie is void
        _predicts(restarted.url, BEARER)


def test_the_session_cookie_expires_on_the_server_too() -> None:
    key = b"k" * 32
    issued = 1_700_000_000
    value = auth.session_value(key, issued)
    assert auth.session_valid(value, key, now=issued + auth.SESSION_SECONDS - 1)
    assert not auth.session_valid(value, key, now=issued + auth.SESSION_SECONDS + 1)
    assert not auth.session_valid(value, b"x" * 32, now=issued + 1)
    for broken in ("", "1.2", "x.y.z", f"{issued}..", value.replace(".", "", 1)):
        assert not auth.session_valid(broken, key, now=issued + 1)


def test_the_throttle_table_stays_small_and_right_tokens_are_never_counted() -> None:
    clock = [0.0]
    # the per-address count alone: the global one (issue 28) is tested in test_bounds.py
    throttle = Throttle(max_clients=100, global_per_minute=1_000_000, clock=lambda: clock[0])

    def wrong() -> bool:
        return False

    for n in range(10_000):
        assert throttle.attempt(f"10.0.{n // 256}.{n % 256}", wrong) == (False, 0.0)
    assert len(throttle) == 100
    for _ in range(100):  # a program sending the right token, however often, is not counted
        assert throttle.attempt("10.9.9.9", lambda: True) == (True, 0.0)
    for _ in range(4):
        assert throttle.attempt("10.9.9.9", wrong) == (False, 0.0)
    assert throttle.attempt("10.9.9.9", wrong) == (False, 0.0)  # the 5th locks it for 2 s
    asked: list[int] = []
    assert throttle.attempt("10.9.9.9", lambda: bool(asked.append(1))) == (False, 2.0)
    assert asked == []  # not even compared while locked out
    clock[0] += 2.5
    assert throttle.attempt("10.9.9.9", wrong) == (False, 0.0)  # the 6th, then 4 s
    assert throttle.attempt("10.9.9.9", wrong) == (False, 4.0)
    clock[0] += 3600
    assert throttle.attempt("10.9.9.9", wrong) == (False, 0.0)  # a quiet quarter hour forgets
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("::ffff:10.1.2.3") == "10.1.2.3"


def test_wrong_tokens_from_many_addresses_are_counted_together() -> None:
    """Issue 28: 200 guesses from 200 addresses were all compared (each had its free tries)."""
    clock = [0.0]
    throttle = Throttle(global_per_minute=100, clock=lambda: clock[0])
    assert throttle.attempt("10.0.0.1", lambda: True) == (True, 0.0)  # a program, known
    compared: list[str] = []

    def wrong(address: str) -> tuple[bool, float]:
        return throttle.attempt(address, lambda: bool(compared.append(address)))

    answers = [wrong(f"10.1.0.{n}") for n in range(200)]
    assert answers[:100] == [(False, 0.0)] * 100 and len(compared) == 100
    assert all(wait == 60.0 for _, wait in answers[100:])  # not even compared
    assert throttle.attempt("10.2.0.1", lambda: True) == (False, 60.0)  # not known: waits
    assert throttle.attempt("10.0.0.1", lambda: True) == (True, 0.0)  # known: still let in
    clock[0] += 30
    assert wrong("10.3.0.1") == (False, 30.0)
    clock[0] += 30.5  # a minute after the first of the hundred: under the budget again
    assert throttle.attempt("10.2.0.1", lambda: True) == (True, 0.0)


@pytest.mark.server
@pytest.mark.spawn
def test_no_server_path_in_any_answer(tmp_path: Path, iris_forest: Path) -> None:
    folder = tmp_path / "anna's models"
    folder.mkdir()
    model = folder / "iris.joblib"
    shutil.copy(iris_forest, model)
    # --no-watch: the host then loads the file itself, so a restart fails once it is gone (with
    # watching on it loads its private copy and recovers: no failure to look at)
    with running_server([str(model), "--no-watch"], cwd=tmp_path) as server:
        info = requests.get(f"{server.url}/model", timeout=10)
        page = requests.get(f"{server.url}/", timeout=10)
        assert info.json()["file"] == "iris.joblib"
        model.unlink()  # the file goes; the model process dies and cannot load it again
        for host in model_hosts(server.proc.pid):
            host.kill()

        def failed() -> list[requests.Response]:  # a list: a 503 Response itself is falsy
            health = requests.get(f"{server.url}/health", timeout=10)
            return [health] if health.json()["status"] == "failed" else []

        (health,) = wait_until(failed, 30)
        assert health.status_code == 503
        assert "iris.joblib" in health.json()["reason"]
        predict = requests.post(f"{server.url}/predict", json=[[1, 2, 3, 4]], timeout=10)
        assert predict.status_code == 503
        page = requests.get(f"{server.url}/", timeout=10)
        for answer in (info, page, health, predict):
            assert str(tmp_path) not in answer.text and "anna" not in answer.text, answer.text
    # a message from the model itself naming a server file keeps only its name
    compiled = paths.pattern(paths.folders(model, None))
    message = f"[Errno 2] No such file or directory: '{folder / 'lookup.csv'}'"
    assert paths.hide(message, compiled) == "[Errno 2] No such file or directory: 'lookup.csv'"
    assert paths.hide("took 2 s /predict", compiled) == "took 2 s /predict"

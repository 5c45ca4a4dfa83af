"""Safe on a shared network: the token, security headers, the model-file pin, LAN guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.helpers import local_client
from winserve import cli, settings
from winserve.errors import SettingsError
from winserve.host import ModelHost
from winserve.model_info import ModelSpec
from winserve.web import auth

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
        assert "Authorization: Bearer" in response.json["error"]["message"]
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

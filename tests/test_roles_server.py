"""Roles on every route (issue 26), against a real server: an owner token, a user token, no
token and a wrong token on each registered route of the app, and without tokens this computer
(an owner) and another address (``127.0.0.2``: not this computer, as far as winserve knows).

``DECISIONS`` is the one table of who may use what: a route the app registers that is not in
it fails ``test_every_route_has_a_decision``, so a new route cannot be added without one."""

from __future__ import annotations

import csv
import html
import http.client
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, local_client, running_server, wait_until
from winserve import tokens
from winserve.model_info import ModelSpec

OPEN, USER, OWNER = "open", "user", "owner"
DECISIONS = {
    # open to all: monitoring and the login page
    **dict.fromkeys(
        [
            "auth.login",
            "auth.login_submit",
            "mlflow.ping",
            "mlflow_model.ping",
            "native.health",
            "native_model.health",
            "oip.live",
            "oip.ready",
            "oip.model_ready",
            "ui.static",
            "ui_model.static",
        ],
        OPEN,
    ),
    # the owner's: what colleagues sent, what is served, the swap, the outcomes
    **dict.fromkeys(
        [
            "models.repository_index",
            "models.repository_load",
            "models.repository_unload",
            "monitor.monitor_json",
            "monitor_model.monitor_json",
            "monitor_page.monitor_page",
            "monitor_page_model.monitor_page",
            "prediction_log.log_csv",
            "prediction_log_model.log_csv",
            "outcomes.upload",
            "outcomes_model.upload",
            "ui.disagreements_csv",
            "ui_model.disagreements_csv",
            "ui.force_swap",
            "ui_model.force_swap",
        ],
        OWNER,
    ),
    # any caller with a token: predict, explain, describe the model, the page, scoring files
    **dict.fromkeys(
        [
            "mcp.endpoint",
            "mcp.tools_json",
            "mlflow.invocations",
            "mlflow.version",
            "mlflow_model.invocations",
            "mlflow_model.version",
            "models.model_info",
            "native.model",
            "native.predict",
            "native.whatif",
            "native_model.model",
            "native_model.predict",
            "native_model.whatif",
            "observe.metrics_view",
            "oip.infer",
            "oip.model_metadata",
            "oip.server_metadata",
            "openapi.openapi_json",
            *(
                f"{blueprint}.{view}"
                for blueprint in ("ui", "ui_model")
                for view in (
                    "api_page",
                    "choose_sheet",
                    "create_job",
                    "index",
                    "job_page",
                    "job_result",
                    "job_status",
                    "predict_form",
                    "predict_image",
                    "status",
                    "why_panel",
                )
            ),
        ],
        USER,
    ),
}
MODEL = "chaos"  # tests.models:chaos
FILLS = {
    "model": MODEL,
    "name": MODEL,
    "version": "1",
    "job_id": "0" * 32,
    "filename": "winserve.css",
}
OWNER_REFUSAL = "is for the model's owner"
PROGRAM = {"X-Winserve-Client": "1"}  # what a program sends when no token is set
Route = tuple[str, str, str]  # endpoint, method, path


def _routes() -> list[Route]:
    """Every (endpoint, method, path) the app registers, the path's variables filled in."""
    app = local_client(ModelSpec(factory="tests.models:chaos")).application
    found: list[Route] = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: FILLS[m.group(1)], rule.rule)
        if rule.endpoint.startswith("models.repository_") and "/models/" in path:
            path = path.replace(f"/models/{MODEL}/", "/models/nosuch/")  # never unload it
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return sorted(found)


def test_every_route_has_a_decision() -> None:
    endpoints = {endpoint for endpoint, _, _ in _routes()}
    undecided = sorted(endpoints - set(DECISIONS))
    assert not undecided, (
        f"routes without a role decision: {undecided}; add each to DECISIONS here (open, user "
        "or owner) and, if the owner's, guard its view with winserve.web.auth.owner_only"
    )


def _call(
    url: str, method: str, path: str, headers: dict[str, str], source: str = "127.0.0.1"
) -> tuple[int, str, str]:
    """(status, body, what refused it: "token", "owner" or "") of one request from
    ``source``, nothing followed. The token check's refusal is a 401 with WWW-Authenticate (a
    page: a redirect to the login form); the owner check's a 403 that says so."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20, source_address=(source, 0))
    try:
        body = b"" if method == "POST" else None
        connection.request(method, path.replace(" ", "%20"), body=body, headers=headers)
        answer = connection.getresponse()
        text = html.unescape(answer.read().decode("utf-8", "replace"))
        status = answer.status
        if (status == 401 and answer.getheader("WWW-Authenticate")) or (
            status == 303 and answer.getheader("Location", "").startswith("/login")
        ):
            return status, text, "token"
        return status, text, "owner" if status == 403 and OWNER_REFUSAL in text else ""
    finally:
        connection.close()


@pytest.fixture
def team(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str], Path]]:
    """A server needing tokens: alice (a user), boss (an owner), and the token setting."""
    path = tmp_path / "tokens.toml"
    named = {"alice": tokens.add(path, "alice"), "boss": tokens.add(path, "boss", tokens.OWNER)}
    named["owner"] = "the single token setting"
    args = ["--factory", "tests.models:chaos", "--tokens-file", str(path)]
    args += ["--log-path", str(tmp_path / "log.sqlite")]  # this test's own log
    with running_server([*args, "--token", named["owner"]], cwd=tmp_path) as server:
        yield server, named, path


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(300)
def test_each_route_answers_each_caller_as_decided(
    team: tuple[ServerProcess, dict[str, str], Path],
) -> None:
    server, named, _ = team
    callers = {
        "owner": {"Authorization": f"Bearer {named['boss']}"},
        "user": {"Authorization": f"Bearer {named['alice']}"},
        "none": {},
        "wrong": {"Authorization": "Bearer not-a-token-of-this-server"},
    }
    wrong: list[str] = []
    for endpoint, method, path in _routes():
        decision = DECISIONS.get(endpoint, "undecided")
        for kind, headers in callers.items():  # the owner first: the wrong token's count resets
            answer = _call(server.url, method, path, headers)
            if decision == OPEN or (kind == "owner" and decision in (USER, OWNER)):
                expected = ""
            elif kind == "user":
                expected = "" if decision == USER else "owner"
            else:
                expected = "token"
            if answer[2] != expected:
                wrong.append(f"{kind} {method} {path} ({decision}): {answer[0]} {answer[1][:120]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(300)
def test_without_tokens_this_computer_is_the_owner_and_others_users(tmp_path: Path) -> None:
    with running_server(["--factory", "tests.models:chaos"], cwd=tmp_path) as server:
        wrong: list[str] = []
        for endpoint, method, path in _routes():
            decision = DECISIONS.get(endpoint, "undecided")
            local = _call(server.url, method, path, {})
            if local[2]:
                wrong.append(f"local {method} {path}: {local[0]} {local[1][:120]}")
            # as a program (a form would be refused for its missing CSRF value first)
            away = _call(server.url, method, path, PROGRAM, source="127.0.0.2")
            if away[2] != ("owner" if decision == OWNER else ""):
                wrong.append(f"127.0.0.2 {method} {path} ({decision}): {away[0]} {away[1][:120]}")
        assert not wrong, "\n".join(wrong)
        status, body, _ = _call(server.url, "GET", "/monitor.json", {}, source="127.0.0.2")
        assert status == 403 and "from this computer only" in body
        server.wait_for_line(lambda line: " local GET /monitor.json 200 " in line, timeout=10)
        server.wait_for_line(lambda line: " - GET /monitor.json 403 " in line, timeout=10)


def _predict(url: str, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=20)
    try:
        connection.request(
            "POST",
            "/predict",
            body=b'{"a": 1, "b": 2}',
            headers={**headers, "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(120)
def test_a_users_login_and_a_removed_name(
    team: tuple[ServerProcess, dict[str, str], Path],
) -> None:
    """A user logs in on the page: the page answers, the monitor says whose token it is; the
    access log names the caller; ``winserve token remove`` on a running server voids the token
    and the login cookie within a second or so."""
    server, named, path = team
    url = server.url
    form = "application/x-www-form-urlencoded"
    status, _, _ = _call(url, "GET", "/", {})
    assert status == 303
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=20)
    connection.request(
        "POST", "/login", body=f"token={named['alice']}&next=/", headers={"Content-Type": form}
    )
    login = connection.getresponse()
    login.read()
    connection.close()
    assert login.status == 303
    cookie = (login.getheader("Set-Cookie") or "").split(";")[0]
    assert ".alice." in cookie and named["alice"] not in cookie
    assert _call(url, "GET", "/", {"Cookie": cookie})[0] == 200
    status, body, _ = _call(url, "GET", "/monitor", {"Cookie": cookie})
    assert status == 403 and "'alice' is a user token" in body
    assert _predict(url, {"Authorization": f"Bearer {named['alice']}"}) == 200
    assert _predict(url, {"Authorization": f"Bearer {named['owner']}"}) == 200
    server.wait_for_line(lambda line: " alice POST /predict 200 " in line, timeout=10)
    server.wait_for_line(lambda line: " owner POST /predict 200 " in line, timeout=10)
    boss = {"Authorization": f"Bearer {named['boss']}"}

    def logged() -> list[str]:
        status, text, _ = _call(url, "GET", "/log.csv", boss)
        assert status == 200, text
        return [row["token_name"] for row in csv.DictReader(io.StringIO(text))]

    wait_until(lambda: {"alice", "owner"} <= set(logged()), 10)  # the writer: ~0.5 s
    status, text, _ = _call(url, "GET", "/monitor.json", boss)
    used = {c["caller"]: c["requests"] for c in json.loads(text)["callers"]}
    assert status == 200 and used["alice"] == 1 and used["owner"] == 1, text
    status, page, _ = _call(url, "GET", "/monitor", boss)
    assert status == 200 and 'data-caller="alice"' in page and "Who used it" in page
    removed = subprocess.run(
        [sys.executable, "-m", "winserve", "token", "--tokens-file", str(path), "remove", "alice"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr
    time.sleep(tokens.RECHECK_SECONDS + 0.5)  # the server looks at the file once a second
    assert _predict(url, {"Authorization": f"Bearer {named['alice']}"}) == 401
    assert _call(url, "GET", "/", {"Cookie": cookie})[0] == 303  # the cookie is void too
    assert _predict(url, {"Authorization": f"Bearer {named['boss']}"}) == 200

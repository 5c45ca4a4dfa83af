"""Bounded before authorised (issue 28, part A) in a real browser: Debian's Chromium through
Playwright, as in tests/chromium.py (whose fixtures are used), against a folder of models
served with a token.

- A page on another port of the same host is the same *site* to a browser: it gets the
  SameSite=Strict login cookie sent along, so the repository must not take that cookie alone.
- Model names with ``%``, ``?`` or ``#`` are quoted in the page's links and forms.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import chromium
from tests.helpers import page_on_another_port, running_server
from tests.model_files import ROW, constant_model

browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.timeout(240)]

TOKEN = "bounds-browser-token-1"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NAMES = {"pct%41": 1.0, "a?b#c": 2.0, "plain": 3.0}


@pytest.fixture(scope="module")
def folder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("bounds-browser")
    folder = root / "models"
    folder.mkdir()
    for name, value in NAMES.items():
        constant_model(folder / f"{name}.joblib", value)
    with running_server([str(folder), "--token", TOKEN], cwd=root) as server:
        yield server.url


def _log_in(page: Any, url: str) -> None:
    page.goto(url + "/")
    page.fill("#token", TOKEN)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("#models")


def _ready(url: str, name: str) -> int:
    quoted = requests.utils.quote(name, safe="")
    return requests.get(f"{url}/v2/models/{quoted}/ready", headers=BEARER, timeout=10).status_code


ATTACK = """<!doctype html><title>another page</title><script>
fetch(%r, {method: "POST", mode: "no-cors", credentials: "include"})
  .then(() => { document.title = "sent"; }, () => { document.title = "failed"; });
</script>"""


@pytest.fixture
def other_site(folder_server: str) -> Iterator[str]:
    """A page on another port of this host that posts to the repository's unload."""
    body = (ATTACK % (folder_server + "/v2/repository/models/plain/unload")).encode()
    with page_on_another_port(body) as url:
        yield url


def test_a_page_on_another_port_cannot_unload_with_the_login_cookie(
    page: Any, folder_server: str, other_site: str
) -> None:
    _log_in(page, folder_server)
    assert any(c["name"] == "winserve_session" for c in page.context.cookies())
    page.goto(other_site)
    page.wait_for_function("document.title !== 'another page'", timeout=20_000)
    assert page.title() == "sent"  # the browser sent it, cookie and all: winserve refused
    assert _ready(folder_server, "plain") == 200
    # the server's own page, with its CSRF value in the header, may (then loads it back)
    page.goto(folder_server + "/models/plain/")
    answer = page.evaluate(
        """async () => {
            const token = document.querySelector("input[name=csrf_token]").value;
            const post = (headers) => fetch("/v2/repository/models/plain/unload",
                {method: "POST", headers}).then(r => r.status);
            return [await post({}), await post({"X-CSRF-Token": token})];
        }"""
    )
    assert answer == [403, 200]
    assert _ready(folder_server, "plain") != 200
    load = requests.post(
        f"{folder_server}/v2/repository/models/plain/load", headers=BEARER, timeout=60
    )
    assert load.status_code == 200 and _ready(folder_server, "plain") == 200


@pytest.mark.parametrize("name", ["pct%41", "a?b#c"])
def test_names_that_need_escaping_keep_their_links_and_forms(
    page: Any, folder_server: str, name: str
) -> None:
    _log_in(page, folder_server)
    page.get_by_role("link", name=name, exact=True).click()
    quoted = requests.utils.quote(name, safe="")
    page.wait_for_url(f"{folder_server}/models/{quoted}/")
    for index, value in enumerate(ROW.values()):
        page.fill(f"#f{index}", str(value))
    page.get_by_role("button", name="Predict").click()
    page.wait_for_url(f"{folder_server}/models/{quoted}/")
    assert page.inner_text("#prediction") == str(NAMES[name])  # this model's own answer
    assert page.get_attribute("#predict-form", "action") == f"/models/{quoted}/"


def test_a_normal_request_still_answers(folder_server: str) -> None:
    response = requests.post(
        f"{folder_server}/models/plain/predict", json=[ROW], headers=BEARER, timeout=10
    )
    assert response.status_code == 200 and response.json()["predictions"] == [3.0]

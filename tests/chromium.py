"""Debian's Chromium driven by Playwright, for every test of a page in a real browser: one
browser per module (``browser``), a page per test that fails the test on a script error or a
Content-Security-Policy refusal (``page``), and ``shot``: a screenshot under
``test-output/screenshots/`` once the page is styled and axe-core finds nothing wrong.

A test module takes the fixtures by name: ``browser = chromium.browser``, ``page = chromium.page``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import ROOT

SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def _chromium() -> str:
    found = os.environ.get("WINSERVE_CHROMIUM") or shutil.which("chromium")
    if not found:
        if os.environ.get("CI") and sys.platform.startswith("linux"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("no chromium on this machine (set WINSERVE_CHROMIUM to its path)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    opened.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "503" not in m.text else None,
    )
    yield opened
    context.close()
    assert not [p for p in problems if "script error" in p or "Content Security" in p], problems


def shot(page: Any, name: str) -> None:
    """Keep a screenshot of the page as it is, after checking that it is styled and that
    axe-core (the accessibility rules browsers' audit tools use) finds nothing wrong."""
    from axe_playwright_python.sync_playwright import Axe

    # a page that reloads itself (a job's page, once done) may be found by its selector before
    # its stylesheet is applied: judge it once loaded (the load event waits for stylesheets)
    page.wait_for_load_state("load")
    # winserve.css sets the body's margin to 0 (a browser's default is 8px): the page is styled
    assert page.evaluate("getComputedStyle(document.body).marginTop") == "0px", name
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']}: {[n['html'][:120] for n in v['nodes'][:3]]}"
        for v in Axe().run(page).response["violations"]
    ]
    assert not violations, (name, violations)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def top_classes(page: Any) -> list[tuple[str, float]]:
    """The top classes the page's answer shows (an image's, a tensor's): each bar's label and
    probability, in the page's order."""
    bars = page.eval_on_selector_all(
        "#top-classes rect", "rs => rs.map(r => [r.dataset.label, r.dataset.probability])"
    )
    return [(label, float(p)) for label, p in bars]

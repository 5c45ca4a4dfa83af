"""Why this answer and what if on the page (issue 25), in a real browser: a DataFrame pipeline
with a category column and its ``churn.reference.csv`` beside it, served with a model that has
no reference sample, in one folder. Debian's Chromium through Playwright, as in
tests/chromium.py (whose fixtures and axe check are used)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from tests import chromium, zoo
from tests.helpers import running_server
from tests.model_files import constant_model

browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page
shot = chromium.shot

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.spawn, pytest.mark.timeout(240)]

ROW = {"tenure": 12.0, "spend": 80.0, "plan": "pro", "region": "north"}


@pytest.fixture(scope="module")
def why_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("why-server") / "models"
    folder.mkdir()
    case = zoo.imputer_pipeline()
    joblib.dump(case.model, folder / "churn.joblib")
    reference = zoo._mixed_frame(300, np.random.default_rng(5))
    reference.to_csv(folder / "churn.reference.csv", index=False)
    (folder / "churn.toml").write_text(
        'title = "Will the customer leave?"\n[classes]\nleaves = "Leaves"\nstays = "Stays"\n',
        encoding="utf-8",
    )
    regressor(folder / "spend.joblib", reference)
    constant_model(folder / "plain.joblib", 4.0)  # no reference sample
    with running_server([str(folder)], cwd=folder.parent) as server:
        yield server.url


def regressor(path: Path, reference: pd.DataFrame) -> None:
    """A regressor of spend from tenure, plan and region, and its reference sample."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = zoo._mixed_frame(400, np.random.default_rng(9)).dropna(subset=["spend"])
    inputs = frame[["tenure", "plan", "region"]]
    model = make_pipeline(
        make_column_transformer(
            (SimpleImputer(), ["tenure"]),
            (
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                ["plan", "region"],
            ),
        ),
        Ridge(),
    ).fit(inputs, frame["spend"] * 1000)
    joblib.dump(model, path)
    reference[["tenure", "plan", "region"]].to_csv(path.with_suffix(".reference.csv"), index=False)


def fill(page: Any, row: dict[str, Any]) -> None:
    for index, value in enumerate(row.values()):
        field = f"#f{index}"
        if page.eval_on_selector(field, "e => e.tagName") == "SELECT":
            page.select_option(field, str(value))
        else:
            page.fill(field, str(value))


def predict(page: Any, url: str, row: dict[str, Any]) -> None:
    """The model's page at ``url``, its form filled with ``row`` and sent: the answer shown."""
    page.goto(url)
    fill(page, row)
    page.get_by_role("button", name="Predict").click()
    page.wait_for_selector("#prediction")


@contextmanager
def without_javascript(browser: Any) -> Iterator[Any]:
    """A page of a browser context with JavaScript off (the form's plain POST), closed after."""
    context = browser.new_context(java_script_enabled=False)
    try:
        yield context.new_page()
    finally:
        context.close()


def table(page: Any, selector: str) -> list[tuple[str, float]]:
    rows = page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].dataset.value])",
    )
    return [(label, float(value)) for label, value in rows]


def test_the_explanation_follows_the_answer_and_the_whatif_follows_the_form(
    page: Any, why_server: str
) -> None:
    predict(page, why_server + "/models/churn/", ROW)
    page.wait_for_selector("#why-table", state="attached")  # fetched after the answer

    bars = page.locator("svg.contributions rect")
    assert bars.count() == len(ROW)  # one bar per input, in the user's columns
    api = requests.post(
        f"{why_server}/models/churn/predict?explain=true", json=[ROW], timeout=60
    ).json()
    found = api["explanations"][0]
    expected = sorted(found["contributions"].items(), key=lambda item: -abs(item[1]))
    shown = table(page, "#why-table")
    assert [label.split(" ")[0] for label, _ in shown] == [column for column, _ in expected]
    assert [value for _, value in shown] == pytest.approx([v for _, v in expected], abs=1e-12)
    assert [label for label, _ in shown if label.startswith("plan")] == ["plan = pro"]
    assert [label for label, _ in shown if label.startswith("spend")] == ["spend 80"]
    sentence = page.inner_text("#why-sentence")
    name = "Leaves" if found["class"] == "leaves" else "Stays"
    assert f"probability of {name} is {100 * found['baseline']:.1f} %" in sentence
    assert f"for this row it is {100 * found['output']:.1f} %" in sentence
    title = page.locator("svg.contributions title").text_content() or ""
    assert "plan = pro" in title and "tenure 12" in title

    # the what-if charts: a line for a number, bars for a category, each with its numbers
    assert page.locator('#whatif figure[data-column="spend"] svg polyline').count() == 1
    assert page.locator('#whatif figure[data-column="plan"] svg rect').count() >= 3
    before = page.inner_html('#whatif figure[data-column="spend"]')
    page.emulate_media(media="print")  # a printout keeps the charts
    assert page.locator("svg.contributions").is_visible()
    assert page.locator('#whatif figure[data-column="spend"] svg').is_visible()
    page.emulate_media(media="screen")
    shot(page, "30-why-and-what-if")

    changed = {**ROW, "tenure": 55.0, "plan": "basic"}
    fill(page, changed)
    page.wait_for_function(
        "() => Number(document.getElementById('whatif').dataset.redrawn || 0) > 0 &&"
        " !document.getElementById('whatif').hasAttribute('aria-busy')"
    )
    after = page.inner_html('#whatif figure[data-column="spend"]')
    assert after != before  # redrawn for the edited row
    swept = requests.post(
        f"{why_server}/models/churn/whatif",
        json={"row": changed, "columns": ["spend"]},
        timeout=60,
    ).json()
    predicted = requests.post(
        f"{why_server}/models/churn/predict", json=[changed], timeout=30
    ).json()["predictions"][0]
    at = swept["classes"].index(predicted)
    curve = swept["curves"][0]
    drawn = table(page, '#whatif figure[data-column="spend"] table')
    assert [value for _, value in drawn] == pytest.approx(
        [100 * p[at] for p in curve["probabilities"]], abs=1e-9
    )
    assert "basic (now)" in (page.text_content('#whatif figure[data-column="plan"] svg') or "")
    page.evaluate("document.querySelectorAll('.why details').forEach(d => d.open = true)")
    shot(page, "31-what-if-redrawn-tables-open")


def test_without_javascript_the_form_post_brings_the_explanation(
    browser: Any, why_server: str
) -> None:
    with without_javascript(browser) as opened:
        predict(opened, why_server + "/models/churn/", ROW)
        assert len(table(opened, "#why-table")) == len(ROW)
        assert opened.locator("#whatif figure").count() == len(ROW)


def test_a_model_without_reference_says_how_to_make_one(page: Any, why_server: str) -> None:
    predict(page, why_server + "/models/plain/", {"a": 1.0, "b": 2.0})
    hint = page.inner_text("#why-hint")
    assert "plain.reference.csv" in hint and 'df.sample(1000).to_csv("' in hint
    assert page.locator("svg.chart").count() == 0 and page.locator("#why").count() == 0
    assert (
        json.loads(requests.get(f"{why_server}/models/plain/model", timeout=30).text)["reference"]
        is None
    )
    shot(page, "32-no-reference-hint")


def test_a_regressor_is_explained_in_its_own_units_without_javascript(
    browser: Any, why_server: str
) -> None:
    row = {"tenure": 40.0, "plan": "basic", "region": "west"}
    with without_javascript(browser) as opened:
        predict(opened, why_server + "/models/spend/", row)
        found = requests.post(
            f"{why_server}/models/spend/predict?explain=true", json=[row], timeout=60
        ).json()["explanations"][0]
        shown = dict(table(opened, "#why-table"))
        assert shown == pytest.approx(
            {
                "tenure 40": found["contributions"]["tenure"],
                "plan = basic": found["contributions"]["plan"],
                "region = west": found["contributions"]["region"],
            },
            abs=1e-9,
        )
        sentence = opened.inner_text("#why-sentence")
        assert "the prediction is" in sentence and "%" not in sentence
        # no percent sign: a regressor's bars are in its own units
        values = opened.locator("svg.contributions text.value").all_text_contents()
        assert len(values) == 3 and not any("%" in v for v in values)
        assert opened.locator("#whatif figure").count() == 3
        assert "Prediction as tenure changes" in opened.inner_text("#whatif")
        # axe needs the page's JavaScript, which this context has turned off: a picture only
        opened.screenshot(path=str(chromium.SHOTS / "33-regressor-no-script.png"), full_page=True)

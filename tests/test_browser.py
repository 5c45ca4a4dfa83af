"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
server on a free port. Each test keeps screenshots under ``test-output/screenshots/``."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import requests

from tests import chromium
from tests.conftest import iris_frame
from tests.helpers import free_port, model_hosts, running_server, wait_until

pytestmark = [pytest.mark.server, pytest.mark.browser]

TOKEN = "browser-test-token-1"
browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page
shot = chromium.shot


@pytest.fixture(scope="module")
def forest_server(iris_forest: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("forest-server")
    model = folder / "iris forest.joblib"
    shutil.copy(iris_forest, model)
    (folder / "iris forest.toml").write_text(
        'title = "Iris flowers"\n'
        'description = "Which iris is it?"\n'
        '[classes]\nsetosa = "Setosa"\n'
        '[features."petal width (cm)"]\nlabel = "Petal width"\nunit = "cm"\n'
        'help = "Measured at the widest point."\n'
        '[example]\n"sepal length (cm)" = 6.1\n"sepal width (cm)" = 2.8\n'
        '"petal length (cm)" = 4.7\n"petal width (cm)" = 1.2\n',
        encoding="utf-8",
    )
    with running_server([str(model)], cwd=folder) as server:
        yield server.url


def _model_answer(path: Path, row: dict[str, float]) -> tuple[str, list[float]]:
    import pandas as pd

    model = joblib.load(path)
    frame = pd.DataFrame([row])
    return str(model.predict(frame)[0]), model.predict_proba(frame)[0].tolist()


def test_fill_the_form_and_read_the_result(
    page: Any, forest_server: str, iris_forest: Path
) -> None:
    page.goto(forest_server + "/")
    assert page.title().startswith("Iris flowers")
    assert "Which iris is it?" in page.inner_text("main")
    shot(page, "01-model-page")
    width = page.get_by_label("Petal width")  # the card's label, found by its <label>
    assert width.input_value() == "1.2"  # prefilled with the card's example
    assert "Measured at the widest point." in page.inner_text("#f3-help")
    row = {
        "sepal length (cm)": 6.3,
        "sepal width (cm)": 3.3,
        "petal length (cm)": 6.0,
        "petal width (cm)": 2.5,
    }
    for index, value in enumerate(row.values()):
        page.fill(f"#f{index}", str(value))
    page.get_by_role("button", name="Predict").click()
    expected, probabilities = _model_answer(iris_forest, row)
    assert page.inner_text("#prediction") == expected
    bars = page.locator("svg.bars rect")
    assert bars.count() == 3
    widths = [float(bars.nth(i).get_attribute("width") or 0) for i in range(3)]
    assert np.allclose(widths, [round(190 * p, 1) for p in probabilities], atol=0.06)
    title = page.locator("svg.bars title").text_content() or ""
    assert "Setosa" in title  # the card's friendly class name
    assert re.search(r"Answered in \d+\.\d ms", page.inner_text("#result"))
    shot(page, "02-prediction")


def test_keyboard_only_prediction(page: Any, forest_server: str) -> None:
    page.goto(forest_server + "/")
    page.focus("#f0")
    for _ in range(4):  # four inputs, then the button
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Predict"
    page.keyboard.press("Enter")
    page.wait_for_selector("#prediction")
    assert page.evaluate("document.activeElement.id") == "result"  # announced to screen readers


def test_invalid_value_shows_the_error_at_its_field(page: Any, forest_server: str) -> None:
    page.goto(forest_server + "/")
    page.fill("#f1", "three")
    page.fill("#f2", "")
    page.get_by_role("button", name="Predict").click()
    assert page.inner_text("#f1-error") == "expected a number, got 'three'"
    # a random forest takes missing values: a field left empty is one, not an error
    assert page.inner_text("#f2-error") == ""
    assert page.get_attribute("#f1", "aria-invalid") == "true"
    assert page.inner_text("#f0-error") == ""
    assert page.input_value("#f1") == "three"  # what was typed stays, to be corrected
    assert page.locator("#prediction").count() == 0
    shot(page, "03-field-errors")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    shot(page, "04-phone")


def _csv_rows(n: int) -> tuple[str, list[dict[str, Any]]]:
    x, _ = iris_frame()
    rng = np.random.default_rng(5)
    picked = x.iloc[rng.integers(0, len(x), n)].reset_index(drop=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer", *x.columns])
    rows = []
    for i, values in enumerate(picked.itertuples(index=False)):
        cells: list[Any] = [f"c{i}", *values]
        if i == 7:
            cells[2] = "seven"  # line 9 (header is line 1); "n/a" would be a missing value
        if i == 20:
            cells = cells[:3]  # line 22: too few values
        writer.writerow(cells)
        rows.append(dict(zip(["customer", *x.columns], cells, strict=False)))
    return out.getvalue(), rows


def test_csv_upload_progress_download(
    page: Any, forest_server: str, iris_forest: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import Error as PlaywrightError

    text, rows = _csv_rows(30_000)
    upload = tmp_path / "customers.csv"
    upload.write_text(text, encoding="utf-8")
    page.goto(forest_server + "/")
    page.set_input_files("#csv-file", str(upload))
    page.get_by_role("button", name="Score").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    seen: list[float] = []
    for _ in range(600):  # 60 s
        if page.locator("#download").count():
            break
        with contextlib.suppress(PlaywrightError):  # the page reloads itself at the job's end
            seen.append(float(page.evaluate("document.getElementById('progress').value")))
        assert page.locator("#job-error").count() == 0, page.inner_text("main")
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"no result after 60 s; progress {seen[-5:]}")
    assert float(page.evaluate("document.getElementById('progress').value")) == 100
    assert seen == sorted(seen)  # it only moves forward
    assert "29,998 of 30,000 rows scored" in page.inner_text("#progress-text")
    problems = page.locator("#problems tbody tr")
    assert problems.count() == 2
    assert problems.nth(0).inner_text().startswith("9\t")
    assert "'sepal width (cm)': expected a number, got 'seven'" in problems.nth(0).inner_text()
    assert problems.nth(1).inner_text().startswith("22\t")
    assert "has 3 values; the first line names 5 columns" in problems.nth(1).inner_text()
    shot(page, "05-csv-done")
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "customers-scored.csv"
    scored = list(
        csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig")))
    )
    assert len(scored) == 30_000
    assert [r["customer"] for r in scored] == [r["customer"] for r in rows]
    assert scored[7]["prediction"] == "" and "seven" in scored[7]["error"]
    assert scored[20]["error"].startswith("has 3 values")
    import pandas as pd

    good = [i for i in range(len(rows)) if i not in (7, 20)]
    x, _ = iris_frame()
    frame = pd.DataFrame([[float(rows[i][c]) for c in x.columns] for i in good], columns=x.columns)
    model = joblib.load(iris_forest)
    assert [scored[i]["prediction"] for i in good] == model.predict(frame).tolist()
    probability = np.array(
        [[float(scored[i][f"probability {c}"]) for c in model.classes_] for i in good]
    )
    assert np.allclose(probability, model.predict_proba(frame))


def test_pasted_rows_and_a_bad_header(page: Any, forest_server: str) -> None:
    page.goto(forest_server + "/")
    page.fill("#csv-rows", "sepal length (cm),colour\n5.1,red\n")
    page.get_by_role("button", name="Score").click()
    page.wait_for_selector("#job-error")
    message = page.inner_text("#job-error")
    assert "the CSV has no columns 'sepal width (cm)'" in message
    shot(page, "06-csv-bad-header")


def test_the_api_page_examples_run_as_pasted(page: Any, forest_server: str) -> None:
    page.goto(forest_server + "/api")
    shot(page, "07-api-page")
    headings = page.locator("main h2").all_inner_texts()
    assert headings[:5] == [
        "winserve",
        "MLflow",
        "Open Inference Protocol v2",
        "Score a whole file (CSV or .xlsx)",  # issue 27 (run in tests/test_jobs_api.py)
        "Excel (Power Query)",
    ]
    blocks = page.locator("main pre code").all_inner_texts()
    # curl, PowerShell, Python for each protocol and for jobs; Power Query (issue 27)
    assert len(blocks) == 13
    python = [b for b in blocks if b.startswith("import requests")]
    assert len(python) == 3
    for code in python:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert re.search(r"setosa|versicolor|virginica", result.stdout), result.stdout
    endpoints = page.locator("main table tbody tr").all_inner_texts()
    assert any("/v2/models/{model_name}/infer" in e for e in endpoints)
    if shutil.which("curl"):
        curl = next(b for b in blocks if b.startswith("curl") and "/invocations" in b)
        result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
        assert '"predictions"' in result.stdout, result.stderr
        # the page's advice for an office proxy in the way (here one that refuses every call)
        advice = page.inner_text("#proxy-help")
        assert '--noproxy "*"' in advice and "trust_env = False" in advice
        dead = "http://127.0.0.1:9"
        proxied = {**os.environ, "http_proxy": dead, "HTTP_PROXY": dead, "no_proxy": ""}
        blocked = subprocess.run(["bash", "-c", curl], capture_output=True, env=proxied, timeout=60)
        assert blocked.returncode != 0
        bypass = curl.replace("curl ", 'curl --noproxy "*" ', 1)
        result = subprocess.run(
            ["bash", "-c", bypass], capture_output=True, text=True, env=proxied, timeout=60
        )
        assert '"predictions"' in result.stdout, result.stderr


def test_the_page_during_a_model_restart(page: Any, tmp_path: Path) -> None:
    with running_server(["--factory", "tests.models:slow_loading_chaos"], cwd=tmp_path) as server:
        page.goto(server.url + "/")
        assert page.inner_text("#status") == "Ready."
        page.fill("#f0", "666")  # the test model's process exits on a = 666
        page.fill("#f1", "1")
        page.get_by_role("button", name="Predict").click()
        status = page.inner_text("#status")
        assert "restarting" in status, status
        assert page.locator("#f0").is_disabled()
        assert "the model process" in page.inner_text("main .error")
        shot(page, "08-restarting")
        from playwright.sync_api import expect

        expect(page.locator("#status")).to_have_text("Ready.", timeout=30_000)  # by the script
        assert page.locator("#f0").is_enabled()
        page.fill("#f0", "2")
        page.get_by_role("button", name="Predict").click()
        assert page.inner_text("#prediction") == "3.0"
        assert len(model_hosts(server.proc.pid)) == 1


def test_the_page_while_loading_then_ready(page: Any, tmp_path: Path) -> None:
    port = free_port()
    args = ["--factory", "tests.models:slow_loading_chaos", "--port", str(port)]
    with running_server(args, cwd=tmp_path, ready=False) as server:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), 30)
        page.goto(url + "/")
        assert page.locator("#predict-form").count() == 0
        assert "The model is loading" in page.inner_text("#status")
        shot(page, "09-loading")
        page.wait_for_selector("#predict-form", timeout=30_000)  # the script reloads the page
        assert page.inner_text("#status") == "Ready."
        server.wait_ready()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code in (200, 503)
    except requests.ConnectionError:
        return False


def test_token_then_form_with_csrf(page: Any, iris_forest: Path, tmp_path: Path) -> None:
    with running_server([str(iris_forest), "--token", TOKEN], cwd=tmp_path) as server:
        page.goto(server.url + "/")
        assert "/login" in page.url
        shot(page, "10-login")
        page.fill("#token", TOKEN)
        page.get_by_role("button", name="Continue").click()
        assert page.input_value("#f0") == ""  # no model card, so no example: nothing prefilled
        for index, value in enumerate((5.1, 3.5, 1.4, 0.2)):
            page.fill(f"#f{index}", str(value))
        page.get_by_role("button", name="Predict").click()
        assert page.inner_text("#prediction") in {"setosa", "versicolor", "virginica"}
        # the same form posted from elsewhere, with the session cookie but no form token
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        forged = requests.post(
            server.url + "/",
            data={"f0": "1", "f1": "1", "f2": "1", "f3": "1"},
            cookies=cookies,
            headers={"Origin": "http://evil.example"},
            timeout=30,
        )
        assert forged.status_code == 403 and "another site" in forged.text
        no_token = requests.post(server.url + "/", data={"f0": "1"}, cookies=cookies, timeout=30)
        assert no_token.status_code == 403 and "reload the page" in no_token.text


def test_times_are_shown_in_the_viewers_time_zone(browser: Any, forest_server: str) -> None:
    """The page writes times in UTC; the script shows them in the viewer's own zone, and
    without the script the UTC time stays readable (issue 22)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    try:
        tokyo = context.new_page()
        tokyo.goto(f"{forest_server}/")
        loaded = tokyo.locator("time[data-local-time]")
        written = loaded.get_attribute("datetime")
        assert written
        local = datetime.fromisoformat(written).astimezone(ZoneInfo("Asia/Tokyo"))
        wait_until(lambda: loaded.inner_text() != written, 10)
        shown = loaded.inner_text()
        assert f"{local:%H:%M:%S}" in shown and "GMT+9" in shown, shown
    finally:
        context.close()
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.goto(f"{forest_server}/")
        assert plain.locator("time[data-local-time]").inner_text() == written
    finally:
        context.close()

"""A folder of models in a real browser (issue 15): the list page at ``/``, a model's own page
with its form and CSV scoring under ``/models/<name>/``, and the page seeing a new version.
Debian's Chromium through Playwright, as in tests/chromium.py (whose fixtures are used)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import chromium
from tests.helpers import running_server, wait_until
from tests.model_files import ROW, constant_model

browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page
shot = chromium.shot

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def folder_server(
    iris_forest: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("folder-server")
    folder = root / "models"
    folder.mkdir()
    shutil.copy(iris_forest, folder / "iris.joblib")
    (folder / "iris.toml").write_text(
        'title = "Iris flowers"\n[features."petal width (cm)"]\nlabel = "Petal width"\n',
        encoding="utf-8",
    )
    constant_model(folder / "const.joblib", 4.0)
    (folder / "damaged.joblib").write_bytes(b"half a file")
    with running_server([str(folder), "--watch-seconds", "0.5"], cwd=root) as server:
        yield server.url, folder


def test_the_list_page_and_a_model_page(page: Any, folder_server: tuple[str, Path]) -> None:
    url, _ = folder_server
    page.goto(url + "/")
    assert page.title().startswith("Models")
    table = page.inner_text("#models")
    assert "Iris flowers" in table and "const" in table
    assert "damaged.joblib" in table  # the file that is not served, with why
    shot(page, "20-models-list")
    page.get_by_role("link", name="Iris flowers").click()
    page.wait_for_url(re.compile(r"/models/iris/$"))
    assert page.title().startswith("Iris flowers")
    row = [6.3, 3.3, 6.0, 2.5]
    for index, value in enumerate(row):
        page.fill(f"#f{index}", str(value))
    page.get_by_role("button", name="Predict").click()
    page.wait_for_url(re.compile(r"/models/iris/$"))
    assert page.inner_text("#prediction") == "virginica"
    shot(page, "21-model-page-prediction")
    page.get_by_role("link", name="API", exact=True).first.click()
    page.wait_for_url(re.compile(r"/models/iris/api$"))


def test_csv_scoring_on_a_model_page_and_a_new_version(
    page: Any, folder_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = folder_server
    upload = tmp_path / "rows.csv"
    upload.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(50)), encoding="utf-8")
    page.goto(url + "/models/const/")
    page.set_input_files("#csv-file", str(upload))
    page.get_by_role("button", name="Score").click()
    page.wait_for_url(re.compile(r"/models/const/jobs/[0-9a-f]{32}$"))
    page.locator("#download").wait_for()
    assert "version 1" in page.inner_text("#model-version")
    shot(page, "22-model-csv-done")
    # a retrained file: the page, left open, shows the new version's answers on the next use
    constant_model(tmp_path / "const.tmp", 5.0)
    os.replace(tmp_path / "const.tmp", folder / "const.joblib")
    import requests

    wait_until(
        lambda: (
            requests.post(f"{url}/models/const/predict", json=[ROW], timeout=10).json()
            == {"predictions": [5.0]}
        ),
        timeout=60,
    )
    page.goto(url + "/models/const/")
    page.fill("#f0", "1")
    page.fill("#f1", "2")
    page.get_by_role("button", name="Predict").click()
    assert page.inner_text("#prediction") == "5.0"

"""The page's image field (issue 24) in a real browser: the digits ONNX classifier of
``tests/tensor_graphs.py`` (8 × 8 grey images, no download) served by a real server, a PNG of a
digit chosen, dropped or pasted, and the top classes the page shows compared with the graph's
own answer in this process. Debian's Chromium through Playwright, as in tests/chromium.py
(whose fixtures and axe check are used)."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import chromium
from tests import tensor_graphs as tg
from tests.helpers import csrf_token, running_server

browser = chromium.browser  # the fixtures: one Chromium per module, a page per test
page = chromium.page
shot = chromium.shot

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.spawn, pytest.mark.timeout(240)]

# the card's classes table: [classes] after [inputs.image] (TOML tables end at the next one)
CARD = 'title = "Handwritten digits"\n[classes]\n7 = "Seven"\n' + tg.DIGITS_CARD
NAMES = {"7": "Seven"}


@pytest.fixture(scope="module")
def digits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("image-page")
    path = tg.write(folder, "digits", tg.digits_graph(), CARD)
    with running_server([str(path), "--workers", "1"], cwd=folder) as server:
        yield server.url


def expected_top(png: bytes, k: int = 5) -> list[tuple[str, float]]:
    """The graph's top ``k`` classes for ``png``, run here on the card's preprocessing."""
    (probabilities,) = tg.run(tg.digits_graph(), {"image": tg.by_hand(png)[None]})
    order = np.argsort(-probabilities[0], kind="stable")[:k]
    return [(NAMES.get(str(c), str(c)), float(probabilities[0][c])) for c in order]


def _assert_same(shown: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [label for label, _ in shown] == [label for label, _ in expected]
    assert [p for _, p in shown] == pytest.approx([p for _, p in expected], abs=1e-5)


def test_a_png_chosen_on_the_page_shows_the_models_top_classes(
    page: Any, digits_server: str, tmp_path: Path
) -> None:
    png = tg.digit_png(7)  # load_digits' 8th image: a 7
    file = tmp_path / "seven.png"
    file.write_bytes(png)
    page.goto(digits_server + "/")
    assert page.title().startswith("Handwritten digits")
    assert page.locator("#f0").count() == 0  # no column form for an image model
    shot(page, "image-01-empty")
    page.set_input_files("#image0", str(file))
    page.wait_for_selector("#image0-preview:not([hidden])")  # the script's preview
    assert page.get_attribute("#image0-preview", "src").startswith("data:image/png;base64,")
    page.get_by_role("button", name="Predict").click()
    page.wait_for_selector("#prediction")
    expected = expected_top(png)
    assert page.inner_text("#prediction") == expected[0][0] == "Seven"
    _assert_same(chromium.top_classes(page), expected)
    scored = page.get_attribute("img.image-scored", "src") or ""
    assert base64.b64decode(scored.split(",", 1)[1]) == png  # the image shown is the one sent
    title = page.locator("#top-classes title").text_content() or ""
    assert title.startswith("Top 5 of 10 classes: Seven")
    shot(page, "image-02-answer")


def test_a_dropped_and_a_pasted_png_are_scored(page: Any, digits_server: str) -> None:
    page.goto(digits_server + "/")
    for index, event in ((3, "drop"), (4, "paste")):
        png = tg.digit_png(index)
        page.evaluate(
            """([b64, kind]) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const file = new File([bytes], "digit.png", { type: "image/png" });
                const data = new DataTransfer();
                data.items.add(file);
                const how = { bubbles: true, cancelable: true };
                if (kind === "drop") {
                    const zone = document.querySelector("[data-image-drop]");
                    zone.dispatchEvent(new DragEvent("dragover", { ...how, dataTransfer: data }));
                    zone.dispatchEvent(new DragEvent("drop", { ...how, dataTransfer: data }));
                } else {
                    const pasted = new ClipboardEvent("paste", { ...how, clipboardData: data });
                    document.dispatchEvent(pasted);
                }
            }""",
            [base64.b64encode(png).decode("ascii"), event],
        )
        page.wait_for_selector("#image0-preview:not([hidden])")
        with page.expect_navigation():  # the answer is a new page, not the last one's
            page.get_by_role("button", name="Predict").click()
        page.wait_for_selector("#prediction")
        _assert_same(chromium.top_classes(page), expected_top(png))


def test_a_file_that_is_not_an_image_is_refused_on_the_page(
    page: Any, digits_server: str, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("these are notes, not a picture\n", encoding="utf-8")
    page.goto(digits_server + "/")
    page.set_input_files("#image0", str(text))
    with page.expect_response(lambda r: r.url.endswith("/image")) as answered:
        page.get_by_role("button", name="Predict").click()
    assert answered.value.status == 400
    message = page.inner_text("#image-error")
    assert "not an image file" in message and "PNG" in message
    assert page.locator("#prediction").count() == 0
    shot(page, "image-03-not-an-image")


def test_the_form_works_without_the_script(digits_server: str) -> None:
    """A plain multipart post, as a browser without JavaScript sends the form; and one
    without a file is told to choose one."""
    session = requests.Session()
    front = session.get(digits_server + "/", timeout=30)
    token = csrf_token(front.text)
    png = tg.digit_png(0)
    answered = session.post(
        digits_server + "/image",
        data={"csrf_token": token},
        files={"image0": ("zero.png", png, "image/png")},
        headers={"Origin": digits_server},
        timeout=30,
    )
    assert answered.status_code == 200, answered.text[:500]
    expected = expected_top(png)
    assert f'id="prediction">{expected[0][0]}<' in answered.text
    empty = session.post(digits_server + "/image", data={"csrf_token": token}, files={}, timeout=30)
    assert empty.status_code == 400
    assert "choose an image file" in empty.text


def test_a_zip_of_images_scored_from_the_page_with_progress(
    page: Any, digits_server: str, tmp_path: Path
) -> None:
    pngs = [tg.digit_png(i) for i in range(20)]
    archive = tmp_path / "digits.zip"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as packed:
        for index, png in enumerate(pngs):
            packed.writestr(f"{index}.png", png)
    archive.write_bytes(out.getvalue())
    page.goto(digits_server + "/")
    assert page.inner_text("#csv-heading") == "Score many images"
    page.set_input_files("#csv-file", str(archive))
    page.get_by_role("button", name="Score").click()
    page.wait_for_selector("#download")
    assert "20 of 20 images scored" in page.inner_text("#progress-text")
    assert "in the ZIP's order" in page.inner_text("#read-as")
    with page.expect_download() as download:
        page.click("#download")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = text.splitlines()[1:]
    (probabilities,) = tg.run(tg.digits_graph(), {"image": np.stack([tg.by_hand(p) for p in pngs])})
    assert [int(r.split(",")[1]) for r in rows] == probabilities.argmax(axis=1).tolist()
    shot(page, "image-04-zip-scored")

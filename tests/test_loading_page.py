"""The page of a folder's model while it has no version yet (issue 24, a new user's finding):
a loading page that says how far and updates by itself, as one file's page does, where it was
a 503 error page ("That did not work … is not loaded yet") linking to itself.

Fake model hosts (``tests.fakes``) under the real registry, data plane and app: a load takes
as long as the test says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeModel
from tests.helpers import wait_until
from winserve.dataplane import DataPlane
from winserve.models.registry import Registry
from winserve.settings import Settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    (models / "small.joblib").write_bytes(b"0" * 4096)
    (models / "big2.joblib").write_bytes(b"0" * 4096)
    return models


@contextmanager
def served(folder: Path, model: FakeModel) -> Iterator[tuple[DataPlane, Any]]:
    from winserve.web import create_app

    registry = Registry(Settings(model=folder), model.make_backend)
    plane = DataPlane(registry)
    client = create_app(Settings(model=folder), plane=plane).test_client()
    registry.start()
    try:
        yield plane, client
    finally:
        registry.close()


def test_a_loading_models_page_says_how_far_and_updates_itself(folder: Path) -> None:
    model = FakeModel(load_seconds=3.0)
    with served(folder, model) as (plane, client):

        def under_way() -> bool:  # registry.start() begins the loads in a thread of its own
            entry = plane.health().model("big2")
            return entry is not None and entry.progress is not None

        wait_until(under_way, 10)
        page = client.get("/models/big2/")
        assert page.status_code == 200
        text = page.text
        assert "That did not work" not in text and "<h1>big2</h1>" in text
        assert "The model is loading: " in text and "This page updates by itself." in text
        assert 'data-status-url="/models/big2/page-status"' in text
        assert '<meta http-equiv="refresh"' in text  # without the script too
        status = client.get("/models/big2/page-status").json
        assert (status["status"], status["serving"], status["version"]) == ("loading", False, 0)
        assert status["text"].startswith("The model is loading: ")
        # the API keeps its 503 (a program retries; Retry-After says when)
        answer = client.post("/models/big2/predict", json=[{"x0": 1.0}])
        assert answer.status_code == 503
        wait_until(lambda: plane.health().ready, 20)
        status = client.get("/models/big2/page-status").json
        assert (status["status"], status["serving"], status["version"]) == ("ready", True, 1)
        page = client.get("/models/big2/")
        assert 'data-has-model="yes"' in page.text and "Get a prediction" in page.text


def test_a_failed_first_load_keeps_its_error_page_and_the_status_says_why(
    folder: Path,
) -> None:
    model = FakeModel(load_error="the file is not a model")
    with served(folder, model) as (plane, client):
        wait_until(lambda: not plane.health().starting, 20)
        page = client.get("/models/big2/")
        assert page.status_code == 503 and "the file is not a model" in page.text
        # a loading page still open polls this: it shows the failure, not "undefined"
        status = client.get("/models/big2/page-status").json
        assert (status["status"], status["key"], status["serving"]) == ("failed", "failed", False)
        assert "the file is not a model" in status["text"]


def test_the_progress_of_a_small_file_beside_a_big_one_is_its_own_size(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The console printed "loading in the model process… 5 s (14 MB)" for 4 kB files (a new
    user's finding, issue 24): each load's size is its own file's, never the folder's."""
    import logging

    from winserve import load_progress

    caplog.set_level(logging.INFO, logger="winserve")
    (folder / "notes.bin").write_bytes(b"0" * 14_000_000)  # not a model: in the same folder
    (folder / "big2.joblib").write_bytes(b"0" * 14_000_000)
    model = FakeModel(load_seconds=2.0)
    original = load_progress.TICK
    load_progress.TICK = 0.5  # a progress line every half second (read when used)
    try:
        with served(folder, model) as (plane, client):
            wait_until(lambda: all(m.progress for m in plane.health().models), 10)
            loading = client.get("/health").json["models"]
            sizes = {name: loading[name]["loading"]["size_bytes"] for name in ("small", "big2")}
            assert sizes == {"small": 4096, "big2": 14_000_000}
            wait_until(lambda: plane.health().ready, 20)
    finally:
        load_progress.TICK = original
    told = {m.split(":")[0]: m for m in caplog.messages if "in the model process" in m}
    assert told["small"].endswith("(4 kB)") and told["big2"].endswith("(14 MB)")

"""A big model's load shows how far it has gone (issue 24): its size and the seconds so far on
the console, the model's page, the model list and ``/health``; the bytes read while the private
copy is made; its size and load time once loaded.

The slow model is a pickle of ``SlowBig``: 24 MB of random bytes (a file that is big and does
not compress) whose unpickling in the model process sleeps 8 s, long enough for the console's
progress line (every ``load_progress.TICK`` = 5 s) and for the pages to be read meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests

from tests.helpers import free_port, running_server, wait_until
from tests.models import ChaosModel
from winserve import load_progress
from winserve.backends.base import Health
from winserve.load_progress import LoadProgress, Tracker, duration_text, size_text
from winserve.models.loader import COPY_CHUNK, Loader
from winserve.settings import Settings

SIZE = 24_000_000  # bytes of padding: the file is a little more, "24 MB" as people read it
LOAD_SECONDS = 8.0


def slow_big(payload: bytes, seconds: float) -> ChaosModel:
    """What a ``SlowBig`` unpickles to, after ``seconds``."""
    time.sleep(seconds)
    return ChaosModel()


class SlowBig:
    """A model file of ``size`` bytes whose load takes ``seconds`` in the model process."""

    def __init__(self, size: int, seconds: float) -> None:
        self.payload = os.urandom(size)
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, tuple[bytes, float]]:
        return (slow_big, (self.payload, self.seconds))


# -- what the progress says ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (512, "512 bytes"),
        (12_345, "12 kB"),
        (3_400_000, "3.4 MB"),
        (340_400_000, "340 MB"),
        (1_234_000_000, "1.2 GB"),
    ],
)
def test_sizes_read_as_people_say_them(size: int, text: str) -> None:
    assert size_text(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.004, "less than 0.01 s"),
        (0.16, "0.16 s"),
        (0.996, "1.0 s"),
        (12.34, "12.3 s"),
        (125.0, "2 min 5 s"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_the_words_of_each_phase() -> None:
    copying = LoadProgress(340_000_000, 120_000_000, True, 3.7)
    assert copying.text() == "copying 120 of 340 MB, 3 s"
    assert copying.line() == "copying 120 of 340 MB, 3 s (35 %)"
    loading = LoadProgress(340_000_000, 340_000_000, False, 12.4)
    assert loading.text() == "340 MB, 12 s"
    assert loading.line() == "loading in the model process… 12 s (340 MB)"
    assert loading.to_dict() == {
        "phase": "loading",
        "size_bytes": 340_000_000,
        "read_bytes": 340_000_000,
        "seconds": 12.4,
        "text": "340 MB, 12 s",
    }
    factory = LoadProgress(0, 0, False, 125.0)  # no file: seconds only
    assert factory.text() == "2 min 5 s"
    assert factory.line() == "loading in the model process… 2 min 5 s"


def test_the_page_and_health_say_it_while_loading_only() -> None:
    from winserve.web.page import page_state

    progress = LoadProgress(340_000_000, 340_000_000, False, 12.4)
    loading = Health("loading", loading=progress)
    assert page_state(loading).text == (
        "The model is loading: 340 MB, 12 s. This page updates by itself."
    )
    assert loading.to_dict()["loading"]["text"] == "340 MB, 12 s"
    assert "loading" not in Health("ready").to_dict()  # the answer is as it was
    assert (
        page_state(Health("loading")).text == "The model is loading. This page updates by itself."
    )


def test_the_copy_counts_every_byte_it_reads(tmp_path: Path) -> None:
    model = tmp_path / "big.joblib"
    model.write_bytes(os.urandom(2 * COPY_CHUNK + 1234))
    tracker = Tracker("big", model.stat().st_size, copying=True)
    chunks: list[int] = []

    def read(count: int) -> None:
        chunks.append(count)
        tracker.read(count)
        seen = tracker.snapshot()
        assert seen.copying and seen.read == sum(chunks)  # readable while it copies

    loader = Loader(Settings(), lambda spec, workers: None)  # type: ignore[arg-type,return-value]
    copy = loader.copy(model, read)
    try:
        assert copy.read_bytes() == model.read_bytes()
        assert chunks == [COPY_CHUNK, COPY_CHUNK, 1234]
        assert tracker.snapshot().text() == "copying 8.4 of 8.4 MB, 0 s"
        tracker.loading()
        assert tracker.snapshot().text() == "8.4 MB, 0 s"
    finally:
        tracker.end()
        loader.drop_copy(copy.parent)


def test_a_folder_model_is_counted_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "mlflow model"
    (folder / "nested").mkdir(parents=True)
    (folder / "MLmodel").write_bytes(b"x" * 1000)
    (folder / "nested" / "model.pkl").write_bytes(b"y" * 5000)
    assert load_progress.size_of(folder) == 6000
    counted: list[int] = []
    loader = Loader(Settings(), lambda spec, workers: None)  # type: ignore[arg-type,return-value]
    copy = loader.copy(folder, counted.append)
    try:
        assert sum(counted) == 6000 and (copy / "nested" / "model.pkl").stat().st_size == 5000
    finally:
        loader.drop_copy(copy.parent)


def test_the_lines_grow_apart_as_a_load_goes_on() -> None:
    interval = load_progress.interval
    assert [interval(s) for s in (0, 59.9, 60, 299, 300, 3000)] == [5, 5, 15, 15, 60, 60]


def test_the_console_gets_a_line_every_tick_until_the_load_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="winserve")
    tracker = Tracker("big", 340_000_000, copying=False, tick=0.05)
    wait_until(lambda: len(caplog.messages) >= 2, 10)
    tracker.end()
    tracker._ticker.join(5)
    told = list(caplog.messages)
    assert all(
        re.fullmatch(r"big: loading in the model process… \d+ s \(340 MB\)", m) for m in told
    )
    time.sleep(0.2)
    assert caplog.messages == told  # ended: no more lines


def test_the_copys_bytes_reach_health_and_the_page_while_it_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder's model whose private copy is held after its first chunk: ``/health`` says
    ``copying`` with the bytes read, its page (a loading page, as one file's) and API answer
    (503) say so in words; then it loads."""
    from tests.fakes import FakeModel
    from winserve.dataplane import DataPlane
    from winserve.models.registry import Registry
    from winserve.web import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "big.joblib").write_bytes(os.urandom(3 * COPY_CHUNK))
    registry = Registry(Settings(model=folder), FakeModel().make_backend)
    first_chunk, go_on = threading.Event(), threading.Event()
    copy = registry._loader.copy

    def held_copy(source: Path, read: Any = None) -> Path:
        def counted(count: int) -> None:
            read(count)
            first_chunk.set()
            go_on.wait(10)

        return copy(source, counted)

    monkeypatch.setattr(registry._loader, "copy", held_copy)
    plane = DataPlane(registry)
    client = create_app(Settings(model=folder), plane=plane).test_client()
    try:
        registry.start()
        assert first_chunk.wait(10)
        progress = client.get("/health").json["models"]["big"]["loading"]
        assert (progress["phase"], progress["read_bytes"], progress["size_bytes"]) == (
            "copying",
            COPY_CHUNK,
            3 * COPY_CHUNK,
        )
        assert progress["text"] == "copying 4 of 13 MB, 0 s"
        # the folder's only model: its page says how far as one file's does, and updates by
        # itself (it was a 503 error page linking to itself, issue 24: changed on purpose)
        for url in ("/", "/models/big/"):
            page = client.get(url)
            assert page.status_code == 200
            assert "The model is loading: copying 4 of 13 MB, 0 s. This page" in page.text
            assert 'data-has-model="no"' in page.text and "<h1>big</h1>" in page.text
            assert "That did not work" not in page.text
        status = client.get("/models/big/page-status").json
        assert (status["key"], status["serving"]) == ("loading", False)
        assert status["text"].startswith("The model is loading: copying 4 of 13 MB")
        answer = client.post("/models/big/predict", json=[{"x0": 1.0}]).json
        assert "loading: copying 4 of 13 MB" in answer["error"]["message"]
        go_on.set()
        wait_until(lambda: plane.health().ready, 10)
        assert "loading" not in client.get("/health").json["models"]["big"]
        assert client.get("/models/big/page-status").json["serving"] is True
        assert 'data-has-model="yes"' in client.get("/models/big/").text
    finally:
        go_on.set()
        registry.close()


# -- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("progress")
    path = folder / "big.joblib"
    joblib.dump(SlowBig(SIZE, LOAD_SECONDS), path)
    return path


def _health(url: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(url + "/health", timeout=10).json()
    return body


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(120)
def test_one_big_model_shows_its_size_and_seconds_while_it_loads(
    big_model: Path, tmp_path: Path
) -> None:
    size = big_model.stat().st_size
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server([str(big_model), "--port", str(port)], cwd=tmp_path, ready=False) as server:

        def loading(after: float) -> dict[str, Any] | None:
            try:
                answer = requests.get(url + "/health", timeout=10)
            except requests.ConnectionError:
                return None
            body: dict[str, Any] = answer.json()
            seconds = body.get("loading", {}).get("seconds", -1)
            return body if answer.status_code == 503 and seconds >= after else None

        first = wait_until(lambda: loading(1.0), 60, 0.1)
        assert first["status"] == "loading", first
        progress = first["loading"]
        assert (progress["phase"], progress["size_bytes"], progress["read_bytes"]) == (
            "loading",  # the private copy is made; the model process loads it
            size,
            size,
        )
        assert progress["text"] == f"24 MB, {int(progress['seconds'])} s"
        status = requests.get(url + "/page-status", timeout=10).json()
        assert status["key"] == "loading"
        assert status["text"].startswith("The model is loading: 24 MB, "), status
        page = requests.get(url + "/", timeout=10).text
        assert re.search(r"The model is loading: 24 MB, \d+ s\. This page updates", page), page
        later = wait_until(lambda: loading(progress["seconds"] + 2), 30, 0.2)
        assert later["loading"]["seconds"] > progress["seconds"]  # it moves

        server.wait_for_line(lambda s: "big: loading in the model process… 5 s (24 MB)" in s, 30)
        server.wait_ready(60)
        first_line = next(s for s in server.lines if s.startswith("winserve: loading"))
        assert first_line.endswith("big.joblib (24 MB) …"), first_line  # its size, first
        loaded = next(s for s in server.lines if s.strip().startswith("loaded"))
        assert re.search(r"loaded\s+24 MB in \d+\.\d\d s, 1 replica", loaded), loaded
        assert len([s for s in server.lines if "loading in the model process" in s]) <= 2
        after = requests.get(url + "/health", timeout=10)
        assert after.status_code == 200 and "loading" not in after.json(), after.text
        assert "from a file of 24 MB" in requests.get(url + "/", timeout=10).text


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(120)
def test_a_folder_lists_a_big_model_loading_with_its_size(big_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "big.joblib").write_bytes(big_model.read_bytes())
    joblib.dump(ChaosModel(), folder / "fast.joblib")
    size = (folder / "big.joblib").stat().st_size
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server([str(folder), "--port", str(port)], cwd=tmp_path, ready=False) as server:

        def big_loading() -> dict[str, Any] | None:
            try:
                models = _health(url).get("models", {})
            except requests.ConnectionError:
                return None
            entry: dict[str, Any] = models.get("big", {})
            ready = models.get("fast", {}).get("status") == "ready"
            return entry if ready and entry.get("loading", {}).get("seconds", 0) >= 1 else None

        entry = wait_until(big_loading, 60, 0.1)
        assert entry["status"] == "loading" and not entry["serving"], entry
        assert entry["loading"]["size_bytes"] == size and entry["loading"]["phase"] == "loading"
        listed = requests.get(url + "/", timeout=10).text
        assert re.search(r"Loading: 24 MB, \d+ s\.", listed), listed
        server.wait_ready(60)
        console = "\n".join(server.lines)
        assert "big: loading in the model process… 5 s (24 MB)" in console, console
        assert re.search(r"big: version 1 serving \(big\.joblib, 24 MB, \d+\.\d s\)", console)
        assert "loading" not in _health(url)["models"]["big"]
        assert "from a file of 24 MB" in requests.get(url + "/models/big/", timeout=10).text

"""The registry's versions with fake backends, no process (issue 23): a new version takes new
requests while the old one drains, drain and unload stop a version once its last request
ends, a failed load keeps the old version, loads of one name run one at a time.

The registry is driven through its own seam, ``Registry(settings, make_backend)``, with
``FakeModel.make_backend`` (a ``PoolBackend`` of fake replicas); the files and their private
copies are real (``test_models_folder.py`` and ``test_registry_races.py`` run the same with
real model processes and a real server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeModel, FakeReplica, answer, row
from tests.helpers import wait_until
from winserve.errors import ModelFailed, ModelUnavailable, NotFound
from winserve.models.registry import KEEP_OLD_VERSIONS, Registry, Slot
from winserve.settings import Settings

pytestmark = pytest.mark.timeout(30)

NAME = "churn"


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """A model file in a folder of models (the fake backend never reads what it holds)."""
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / f"{NAME}.joblib"
    path.write_bytes(b"version 1")
    return path


@pytest.fixture
def registry(model: FakeModel, model_file: Path) -> Iterator[Registry]:
    registry = Registry(Settings(model=model_file.parent), model.make_backend)
    yield registry
    registry.close()


def replicas_of(model: FakeModel, slot: Slot) -> list[FakeReplica]:
    """The fake replicas of one version: those loading from its private copy."""
    assert slot.copy is not None
    found = [r for r in model.replicas if Path(r.spec.path).parent == slot.copy]
    assert found, "no replica loaded this version's copy"
    return found


def serving(registry: Registry) -> int:
    """The version that a new request of NAME gets."""
    slot = registry.acquire(NAME)
    registry.release(slot)
    return slot.version


def test_a_new_version_takes_new_requests_while_the_old_one_drains(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    assert registry.load(NAME, model_file)
    old = registry.acquire(NAME)  # a request in flight on version 1
    assert old.version == 1 and old.state == "serving"
    model_file.write_bytes(b"version 2")
    assert registry.load(NAME, model_file)

    assert serving(registry) == 2
    assert old.state == "draining"
    assert old.backend.predict(row(3)).predictions == [answer(3)]  # its request still answers
    assert not any(r.stopped for r in replicas_of(model, old))
    again = registry.acquire_version(NAME, "1")  # a draining version can still be asked by name
    assert again is old
    registry.release(again)

    registry.release(old)  # its last request ends: the version stops, its copy goes
    wait_until(lambda: old.state == "stopped", 5)
    wait_until(lambda: all(r.stopped for r in replicas_of(model, old)), 5)
    assert old.copy is not None
    wait_until(lambda: not old.copy.exists(), 5)  # type: ignore[union-attr]
    current = registry.acquire(NAME)
    try:
        assert not any(r.stopped for r in replicas_of(model, current))
        assert current.backend.predict(row(4)).predictions == [answer(4)]
    finally:
        registry.release(current)
    with pytest.raises(NotFound, match="has no version '1' being served; it has '2'"):
        registry.acquire_version(NAME, "1")


def test_the_old_version_waits_for_its_last_request(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    assert registry.load(NAME, model_file)
    first, second = registry.acquire(NAME), registry.acquire(NAME)
    model_file.write_bytes(b"version 2")
    assert registry.load(NAME, model_file)
    registry.release(first)
    with pytest.raises(AssertionError):  # one request is still in flight on it
        wait_until(lambda: first.state == "stopped", 0.5)
    assert first.state == "draining"
    assert not any(r.stopped for r in replicas_of(model, first))
    registry.release(second)
    wait_until(lambda: first.state == "stopped", 5)


def test_the_same_file_again_makes_no_new_version(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    assert registry.load(NAME, model_file)
    model_file.write_bytes(b"version 1")  # written again, the same bytes
    assert registry.load(NAME, model_file)
    assert serving(registry) == 1
    assert len(model.replicas) == 1  # no second backend was started


def test_a_failed_load_keeps_the_old_version_serving(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    assert registry.load(NAME, model_file)
    model.load_error = "ValueError: not a model"
    model_file.write_bytes(b"broken")
    assert not registry.load(NAME, model_file)
    entry = registry.entry(NAME)
    assert "not a model" in entry.reason
    assert serving(registry) == 1 and not entry.older
    failed = model.replicas[-1]
    assert failed.stopped  # the new version's replicas were stopped
    assert not Path(failed.spec.path).parent.exists()  # and its private copy deleted


def test_a_model_that_never_loaded_says_why(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    model.load_error = "ValueError: not a model"
    assert not registry.load(NAME, model_file)
    with pytest.raises(ModelFailed, match="not a model"):
        registry.acquire(NAME)


def test_a_model_still_loading_is_unavailable_not_failed(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    model.load_seconds = 0.5
    loading = threading.Thread(target=registry.load, args=(NAME, model_file))
    loading.start()
    try:
        wait_until(lambda: model.replicas, 5)
        with pytest.raises(ModelUnavailable, match="is not loaded") as caught:
            registry.acquire(NAME)
        assert not isinstance(caught.value, ModelFailed)
        assert caught.value.retry_after >= 1
    finally:
        loading.join(5)
    assert serving(registry) == 1


def test_an_unload_during_a_load_waits_for_it_and_stops_what_it_started(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    """Issue 28 item 8: the version a load started while its name was unloaded went on
    running, listed nowhere."""
    model.load_seconds = 0.3
    loading = threading.Thread(target=registry.load, args=(NAME, model_file))
    loading.start()
    wait_until(lambda: model.replicas, 5)
    registry.unload(NAME)  # waits for the load of that name, then unloads what it loaded
    loading.join(5)
    assert registry.names() == []
    wait_until(lambda: all(r.stopped for r in model.replicas), 5)


def test_unload_answers_404_and_stops_the_version_when_its_last_request_ends(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    assert registry.load(NAME, model_file)
    held = registry.acquire(NAME)
    registry.unload(NAME)
    with pytest.raises(NotFound, match=f"no model named '{NAME}'"):
        registry.acquire(NAME)
    assert NAME not in registry.names()
    assert held.state == "draining"
    assert held.backend.predict(row(5)).predictions == [answer(5)]  # the request in flight
    registry.release(held)
    wait_until(lambda: held.state == "stopped", 5)
    wait_until(lambda: all(r.stopped for r in replicas_of(model, held)), 5)
    with pytest.raises(NotFound):
        registry.unload(NAME)  # twice: it is not served


def test_a_name_unloaded_then_loaded_again_gets_a_new_version(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    assert registry.load(NAME, model_file)
    registry.unload(NAME)
    assert registry.load(NAME, model_file)
    assert serving(registry) == 2
    assert registry.names() == [NAME]


def test_loads_of_one_name_at_once_start_one_version(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    """Eight loads of one file at once start one backend; the others find it serving (issue 28
    item 8: they used to start eight model processes)."""
    model.load_seconds = 0.1
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(registry.load(NAME, model_file)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 8
    assert serving(registry) == 1
    assert len(model.replicas) == 1


def test_close_stops_every_version(registry: Registry, model: FakeModel, model_file: Path) -> None:
    assert registry.load(NAME, model_file)
    held = registry.acquire(NAME)  # version 1 cannot drain: close stops it all the same
    model_file.write_bytes(b"version 2")
    assert registry.load(NAME, model_file)
    registry.close()
    wait_until(lambda: all(r.stopped for r in model.replicas), 5)
    assert len(model.replicas) == 2
    registry.release(held)


def test_the_watcher_follows_the_folder(model: FakeModel, model_file: Path, tmp_path: Path) -> None:
    """watch_seconds apart: a new file is served, a changed one swapped in, a removed one
    unloaded, and one put back as it was served again (issue 28 item 5)."""
    folder = model_file.parent
    registry = Registry(Settings(model=folder, watch_seconds=0.1), model.make_backend)
    try:
        registry.start()
        registry.wait_loaded(5)
        assert registry.names() == [NAME] and serving(registry) == 1
        registry.watch()
        (folder / "other.joblib").write_bytes(b"another model")
        wait_until(lambda: "other" in registry.names() and not registry.entry("other").loading, 5)
        model_file.write_bytes(b"version 2")
        wait_until(lambda: serving(registry) == 2, 5)
        kept = tmp_path / "kept.joblib"
        model_file.rename(kept)
        wait_until(lambda: registry.names() == ["other"], 5)
        kept.rename(model_file)  # back, with the time stamp it had
        wait_until(lambda: NAME in registry.names() and not registry.entry(NAME).loading, 5)
        assert serving(registry) == 3
        assert registry.refused() == {}
    finally:
        registry.close()


def test_stopped_versions_are_kept_for_their_csv_results_up_to_a_limit(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    for version in range(1, 6):
        model_file.write_bytes(f"version {version}".encode())
        assert registry.load(NAME, model_file)
    entry = registry.entry(NAME)
    kept = list(range(5 - KEEP_OLD_VERSIONS, 5))  # the newest stopped ones
    wait_until(lambda: [s.version for s in entry.older] == kept, 5)
    wait_until(lambda: all(s.state == "stopped" for s in entry.older), 5)
    assert serving(registry) == 5
    assert [r.stopped for r in model.replicas] == [True] * 4 + [False]


def test_the_status_is_a_frozen_snapshot_of_every_version(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    """What the pages render (issue 23): names, versions serving and draining, why not."""
    assert registry.load(NAME, model_file)
    held = registry.acquire(NAME)
    model_file.write_bytes(b"version 2")
    assert registry.load(NAME, model_file)
    (status,) = registry.status()
    assert status.name == NAME and status.path == str(model_file) and not status.loading
    assert [(v.version, v.state) for v in status.versions] == [(2, "serving"), (1, "draining")]
    assert status.current is not None and status.current.version == 2
    assert status.serving and status.state == "ready" and status.reason == ""
    assert status.versions[1].inflight == 1 and status.versions[1].file == model_file.name
    assert len(status.current.sha256) == 64 and status.current.loaded_at
    with pytest.raises(AttributeError):
        status.reason = "changed"  # type: ignore[misc]
    registry.release(held)
    wait_until(lambda: registry.status()[0].versions[1].state == "stopped", 5)
    assert status.versions[1].state == "draining"  # the snapshot taken before does not move

    model.load_error = "ValueError: not a model"
    model_file.write_bytes(b"broken")
    assert not registry.load(NAME, model_file)
    snapshot = registry.snapshot()
    assert not snapshot.starting and snapshot.default_name == NAME and snapshot.refused == ()
    (status,) = snapshot.models
    assert "not a model" in status.reason and status.state == "ready"  # version 2 keeps serving


def test_a_name_without_a_version_is_loading_then_failed(
    registry: Registry, model: FakeModel, model_file: Path
) -> None:
    model.load_error = "ValueError: not a model"
    model.load_seconds = 0.3
    loading = threading.Thread(target=registry.load, args=(NAME, model_file))
    loading.start()
    wait_until(lambda: model.replicas, 5)
    (status,) = registry.status()
    assert status.loading and status.state == "loading" and status.versions == ()
    loading.join(5)
    (status,) = registry.status()
    assert status.state == "failed" and not status.serving and "not a model" in status.reason


# -- one model is a folder of one (issue 23): the same load(), copy, swap and drain -----------


def test_one_file_is_a_folder_of_one_loaded_from_a_private_copy(
    model: FakeModel, model_file: Path
) -> None:
    """The file's neighbours are not served (the name filter); it loads as a folder's files
    do, from a private copy, and a changed file becomes version 2 while version 1 drains."""
    (model_file.parent / "neighbour.joblib").write_bytes(b"not served")
    model.load_seconds = 0.3
    registry = Registry(Settings(model=model_file, watch_seconds=0.1), model.make_backend)
    try:
        registry.start()
        assert registry.starting and not registry.is_folder and registry.folder is None
        shown = registry.acquire()  # one model: its first version shows its own state at once
        assert shown.name == NAME and shown.health().status == "loading"
        registry.release(shown)
        registry.wait_loaded(5)
        assert not registry.starting and registry.names() == [NAME]
        assert registry.default_name() == NAME and registry.refused() == {}
        first = registry.acquire()
        registry.release(first)
        assert first.version == 1 and first.source == model_file and first.loaded_at
        assert first.copy is not None and first.copy != model_file.parent
        assert [Path(r.spec.path).parent for r in model.replicas] == [first.copy]
        registry.watch()
        model_file.write_bytes(b"version 2")
        wait_until(lambda: serving(registry) == 2, 5)
        wait_until(lambda: first.state == "stopped", 5)
        assert registry.names() == [NAME]  # the neighbour is still not served
        model_file.unlink()  # one file that goes keeps serving what it loaded
        registry.wait_loaded(0.5)
        assert serving(registry) == 2
    finally:
        registry.close()


def test_one_file_deleted_keeps_serving_and_no_longer_blames_an_older_file(
    model: FakeModel, model_file: Path
) -> None:
    """A new user's finding (issue 23): the single file, overwritten with one that did not
    load, then deleted, still said the file on disk did not load ("not a model") while its
    version served on. It says the file is gone, and the file put back loads again."""
    registry = Registry(Settings(model=model_file, watch_seconds=0.1), model.make_backend)
    try:
        registry.start()
        registry.wait_loaded(5)
        registry.watch()
        model.load_error = "ValueError: not a model"
        model_file.write_bytes(b"broken")
        wait_until(lambda: "not a model" in registry.entry(NAME).reason, 5)
        model_file.unlink()
        wait_until(lambda: "not a model" not in registry.entry(NAME).reason, 5)
        assert registry.entry(NAME).reason == f"{model_file.name} is not on disk any more"
        assert serving(registry) == 1  # one file that goes keeps serving what it loaded
        model.load_error = ""
        model_file.write_bytes(b"broken")  # the same bytes as the file that did not load
        wait_until(lambda: serving(registry) == 2, 5)
        assert registry.entry(NAME).reason == ""
    finally:
        registry.close()


def test_one_model_that_fails_stays_shown_and_says_why(model: FakeModel, model_file: Path) -> None:
    """Its first version stays its current slot, failed (the page and /health say why), where
    a folder's name without a version answers 503 (issue 22)."""
    model.load_error = "the sample prediction failed: ValueError: must be positive"
    registry = Registry(Settings(model=model_file), model.make_backend)
    try:
        registry.start()
        registry.wait_loaded(5)
        assert not registry.starting
        slot = registry.acquire()
        registry.release(slot)
        assert slot.health().status == "failed" and not slot.loaded_at
        (status,) = registry.status()
        assert status.state == "failed" and not status.serving
        assert status.current is not None and not status.current.loaded
        assert (
            status.reason.startswith("the sample prediction failed") and "positive" in status.reason
        )
        assert registry.entry(NAME).reason == ""  # not "a newer file did not load"
    finally:
        registry.close()
    assert all(r.stopped for r in model.replicas)


def test_a_factory_is_one_item_loaded_by_the_same_load(model: FakeModel) -> None:
    """No file: nothing copied or watched; named after the factory's attribute, as before."""
    registry = Registry(Settings(factory="tests.models:churn_factory"), model.make_backend)
    try:
        registry.start()
        registry.wait_loaded(5)
        assert registry.names() == ["churn_factory"] and not registry.is_folder
        slot = registry.acquire()
        registry.release(slot)
        assert slot.version == 1 and slot.copy is None and slot.source is None
        assert slot.loaded_at and slot.backend.predict(row(2)).predictions == [answer(2)]
        (replica,) = model.replicas
        assert replica.spec.factory == "tests.models:churn_factory" and replica.spec.path == ""
        registry.watch()  # nothing to watch: no thread, no second load
        assert len(model.replicas) == 1
    finally:
        registry.close()


def test_a_file_written_while_it_is_copied_is_tried_again(
    model: FakeModel, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start, one file still being written gets its first version once it stays the same
    (it was loaded from itself before issue 23); one that never does says so."""
    registry = Registry(Settings(model=model_file, watch_seconds=0.1), model.make_backend)
    copy = registry._loader.copy
    writes = iter([b"version 1, still", b"version 1, written"])

    def copied_while_written(path: Path, read: Any = None) -> Path:  # read: issue 24's progress
        target = copy(path, read)
        written = next(writes, None)
        if written is not None:  # the first two copies see a change, the third none
            path.write_bytes(written)
        return target

    monkeypatch.setattr(registry._loader, "copy", copied_while_written)
    try:
        assert registry.load(NAME, model_file)
        slot = registry.acquire(NAME)
        registry.release(slot)
        assert slot.version == 1 and slot.loaded_at and len(model.replicas) == 1
        assert slot.copy is not None and (slot.copy / model_file.name).read_bytes() == (
            b"version 1, written"
        )
    finally:
        registry.close()

    never = Registry(Settings(model=model_file, watch_seconds=0.05), model.make_backend)
    copy = never._loader.copy
    changes = iter(range(1000))

    def always_written(path: Path, read: Any = None) -> Path:
        target = copy(path, read)
        path.write_bytes(f"change {next(changes)}".encode())
        return target

    monkeypatch.setattr(never._loader, "copy", always_written)
    try:
        assert not never.load(NAME, model_file)
        (status,) = never.status()
        assert "kept changing" in status.reason and status.state == "failed"
    finally:
        never.close()


def test_the_bare_routes_model_is_found_in_one_call(model: FakeModel, model_file: Path) -> None:
    """``acquire()`` without a name (the bare routes): one file's only model, found without
    asking ``default_name`` (issue 29), with the same answers as before: its own name once it
    is unloaded; in a folder, its only model, else a 404 naming the setting."""
    one = Registry(Settings(model=model_file), model.make_backend)
    try:
        assert one.load(NAME, model_file)
        slot = one.acquire()
        assert (slot.name, slot.inflight) == (NAME, 1)
        one.release(slot)
        one.unload(NAME)
        with pytest.raises(NotFound, match=f"no model named '{NAME}'"):
            one.acquire()
    finally:
        one.close()
    folder = Registry(Settings(model=model_file.parent), model.make_backend)
    try:
        assert folder.load(NAME, model_file)
        only = folder.acquire()  # a folder of one: its only model
        assert only.name == NAME
        folder.release(only)
        other = model_file.parent / "other.joblib"
        other.write_bytes(b"another model")
        assert folder.load("other", other)
        with pytest.raises(NotFound, match="serves several models"):
            folder.acquire()
        named = folder.acquire("other")
        assert named.name == "other"
        folder.release(named)
    finally:
        folder.close()

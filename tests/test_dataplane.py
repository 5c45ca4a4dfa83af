"""The data plane (issue 23): the web layer's one door to the models, and its one health
summary, with fake replicas and no process (``tests/fakes.py``).

- no module of ``winserve/web`` imports the registry or a backend (read from their source);
- the server's one status: strict readiness (``loading``, 503, until every model found at
  start has loaded or failed), ``degraded`` only for replicas of a loaded model that are
  down, a failed model in its own entry;
- ``/health``, ``/v2/health/ready``, the repository index, ``/metrics`` and the console
  banner all say what ``DataPlane.health()`` says;
- a request's version is not stopped under it by a swap; ``/openapi.json`` describes any
  served version, not only "1".
"""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import psutil
import pytest
import requests
from flask.testing import FlaskClient

from tests.fakes import FakeModel
from tests.helpers import running_server, wait_until
from tests.models import ChaosModel, slow_reloading_chaos
from winserve import banner
from winserve.backends.base import Backend, Health, ReplicaHealth
from winserve.dataplane import DataPlane, HealthSummary, ModelHealth, overall
from winserve.model_info import ModelSpec
from winserve.models.registry import Registry
from winserve.service import PredictRequest
from winserve.settings import Settings
from winserve.web import create_app

pytestmark = pytest.mark.timeout(30)

WEB = Path(__file__).resolve().parent.parent / "winserve" / "web"
FORBIDDEN = ("winserve.models", "winserve.registry", "winserve.backends")


# -- the web layer talks to the data plane only -------------------------------------------------


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (``from winserve import backends`` counts as
    ``winserve.backends``), wherever the import is (a function's too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def test_no_web_module_imports_the_registry_or_a_backend() -> None:
    modules = sorted(WEB.glob("*.py"))
    assert len(modules) > 10, "the web package was not found"
    reaching = {
        f"{path.name}: {name}"
        for path in modules
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert reaching == set(), "web modules must call winserve.dataplane, not the models' insides"


def test_the_import_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check above can fail: each way of writing the import is caught."""
    source = tmp_path / "view.py"
    source.write_text(
        "import winserve.backends.pool\n"
        "from winserve import backends\n"
        "def view():\n"
        "    from winserve.models.registry import Slot\n",
        encoding="utf-8",
    )
    names = _imports(source)
    assert "winserve.backends.pool" in names
    assert "winserve.backends" in names
    assert "winserve.models.registry" in names


# -- the one status ------------------------------------------------------------------------------


def _health(status: Any, replicas: int = 1, down: int = 0) -> Health:
    states = ["ready"] * (replicas - down) + ["restarting"] * down
    return Health(status, tuple(ReplicaHealth(i, s) for i, s in enumerate(states)))  # type: ignore[arg-type]


def _loaded(name: str, status: Any) -> ModelHealth:
    return ModelHealth(name, status, version=1, health=_health(status))


READY = _loaded("a", "ready")
DEGRADED = _loaded("b", "degraded")
NEVER_LOADED = ModelHealth("c", "failed", reason="c.pkl: not a model")
LOADING = ModelHealth("d", "loading", loading=True)
LOST = _loaded("e", "failed")  # it loaded; every replica is down now


@pytest.mark.parametrize(
    ("models", "starting", "expected"),
    [
        ((READY, LOADING), True, "loading"),  # strict: a model of the start still loads
        ((READY, NEVER_LOADED), True, "loading"),
        ((READY,), False, "ready"),
        ((READY, NEVER_LOADED), False, "ready"),  # a file that did not load is not degraded
        ((READY, DEGRADED), False, "degraded"),  # replicas of a loaded model are down
        ((READY, LOST), False, "degraded"),
        ((NEVER_LOADED,), False, "failed"),
        ((NEVER_LOADED, LOADING), False, "loading"),  # a file added later, loading
        ((), False, "failed"),  # an empty folder serves nothing
        ((ModelHealth("s", "stopped", version=1, health=_health("stopped")),), False, "stopped"),
    ],
)
def test_the_one_status(models: tuple[ModelHealth, ...], starting: bool, expected: str) -> None:
    assert overall(models, starting) == expected
    summary = HealthSummary(overall(models, starting), starting, models)
    assert summary.ready == (not starting and any(m.serving for m in models))


# -- with fake replicas --------------------------------------------------------------------------


class Models:
    """Fake models by file name: each file's backend is a pool of its own ``FakeModel``."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeModel] = {}

    def __getitem__(self, name: str) -> FakeModel:
        return self.by_name.setdefault(name, FakeModel(name=name))

    def make_backend(self, spec: ModelSpec, workers: int) -> Backend:
        return self[Path(spec.path).stem].make_backend(spec, workers)


@pytest.fixture
def models() -> Models:
    return Models()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    found = tmp_path / "models"
    found.mkdir()
    for name in ("fast", "slow"):
        (found / f"{name}.joblib").write_bytes(name.encode())
    return found


@pytest.fixture
def started(models: Models, folder: Path) -> Iterator[tuple[DataPlane, FlaskClient]]:
    """A folder of two models whose second loads slowly, started, and the app over it."""
    models["slow"].load_gate = threading.Event()  # it loads when the test says so
    registry = Registry(Settings(model=folder, workers=2), models.make_backend)
    _start(registry)
    plane = DataPlane(registry)
    app = create_app(Settings(model=folder), plane=plane)
    try:
        yield plane, app.test_client()
    finally:
        registry.close()


@pytest.fixture
def ready(models: Models, folder: Path) -> Iterator[tuple[DataPlane, FlaskClient]]:
    """A folder of two models, both loaded, and the app over it; the registry closed after."""
    registry = Registry(Settings(model=folder), models.make_backend)
    _start(registry)
    plane = DataPlane(registry)
    try:
        wait_until(lambda: plane.health().ready, 20)
        yield plane, create_app(Settings(model=folder), plane=plane).test_client()
    finally:
        registry.close()


def _start(registry: Registry) -> None:
    """Every model of the folder starts loading in the background (``Registry.start``; named
    ``start_folder`` before the single file became a folder of one)."""
    start = getattr(registry, "start", None) or registry.start_folder
    start()


def test_not_ready_until_every_model_of_the_start_has_loaded(
    started: tuple[DataPlane, FlaskClient], models: Models
) -> None:
    plane, client = started
    wait_until(lambda: plane.health().model("fast").serving, 20)  # type: ignore[union-attr]

    def slow_copied() -> bool:  # its file copied, its replicas started (the gate holds them)
        progress = plane.health().model("slow").progress  # type: ignore[union-attr]
        return progress is not None and not progress.copying

    wait_until(slow_copied, 20)
    summary = plane.health()
    assert summary.starting and summary.status == "loading" and not summary.ready
    slow = summary.model("slow")
    assert slow is not None and slow.status == "loading" and slow.version is None

    health = client.get("/health")
    assert health.status_code == 503 and health.json["status"] == "loading"
    assert health.json["models"]["fast"]["status"] == "ready"
    slow_entry = dict(health.json["models"]["slow"])
    progress = slow_entry.pop("loading")  # how far its load has gone (issue 24)
    assert slow_entry == {"status": "loading", "serving": False}
    assert progress["phase"] == "loading" and progress["size_bytes"] == 4  # b"slow"
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/ready").json == {"ready": False}
    assert client.get("/v2/health/live").status_code == 200
    # each model's own readiness stays at its own route
    assert client.get("/v2/models/fast/ready").status_code == 200
    assert client.get("/v2/models/slow/ready").status_code == 503
    assert client.post("/models/fast/predict", json=[{"x0": 1, "x1": 2}]).status_code == 200

    models["slow"].load_gate.set()  # type: ignore[union-attr]  # the slow model's load ends
    wait_until(lambda: not plane.health().starting, 20)
    assert plane.health().ready  # one replica of each model serves: start is over
    # the second replica of a model may still be loading (degraded) for a moment
    wait_until(lambda: plane.health().status == "ready", 20)
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "ready"
    assert client.get("/v2/health/ready").json == {"ready": True}
    assert models["slow"].replicas, "the slow model was loaded by its fake replicas"


def test_every_page_renders_the_one_summary(
    started: tuple[DataPlane, FlaskClient], models: Models
) -> None:
    plane, client = started
    models["slow"].load_gate.set()  # type: ignore[union-attr]  # no wait for its first load
    wait_until(lambda: plane.health().status == "ready", 20)  # every replica is up
    models["slow"].load_seconds = 1.5  # its restart takes a while: the asserts below see it down
    models["slow"].replicas[0].die()
    wait_until(lambda: plane.health().status == "degraded", 5)
    summary = plane.health()
    slow = summary.model("slow")
    assert slow is not None and slow.status == "degraded" and slow.serving

    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "degraded"
    assert health.json["models"]["slow"]["status"] == "degraded"
    index = {m["name"]: m for m in client.post("/v2/repository/index").json}
    assert index["slow"]["state"] == "READY" and index["fast"]["version"] == "1"
    metrics = client.get("/metrics").text
    assert 'winserve_ready{model="slow"} 1.0' in metrics
    assert 'winserve_replica_ready{model="slow",replica="0"} 0.0' in metrics
    console = banner.folder(summary, "127.0.0.1", 8080)
    assert "http://127.0.0.1:8080/models/fast/  version 1" in console
    assert str(plane.health().folder) in console
    wait_until(lambda: plane.health().status == "ready", 15)


def test_a_model_that_never_loaded_is_failed_in_its_entry_and_the_server_is_ready(
    models: Models, folder: Path
) -> None:
    models["slow"].load_error = "ValueError: not a model"
    (folder / "notes.joblib.txt").write_text("not listed", encoding="utf-8")
    (folder / "fast.pkl").write_bytes(b"the same name twice")
    registry = Registry(Settings(model=folder), models.make_backend)
    _start(registry)
    try:
        plane = DataPlane(registry)
        wait_until(lambda: not plane.health().starting, 10)
        summary = plane.health()
        assert summary.status == "ready" and summary.ready
        slow = summary.model("slow")
        assert slow is not None and slow.status == "failed" and "not a model" in slow.reason
        assert [name for name, _ in summary.not_served] == ["fast.pkl"]
        client = create_app(Settings(model=folder), plane=plane).test_client()
        health = client.get("/health")
        assert health.status_code == 200 and health.json["status"] == "ready"
        assert health.json["models"]["slow"]["status"] == "failed"
        assert "not a model" in health.json["models"]["slow"]["reason"]
        assert "fast.pkl" in health.json["not_served"]
        assert 'winserve_ready{model="slow"} 0.0' in client.get("/metrics").text
        console = banner.folder(summary, "127.0.0.1", 8080)
        assert "slow" in console and "NOT served: ValueError: not a model" in console
    finally:
        registry.close()


def test_a_request_keeps_its_version_through_a_swap(
    ready: tuple[DataPlane, FlaskClient], folder: Path
) -> None:
    plane, _ = ready
    held = plane.hold("fast")
    (folder / "fast.joblib").write_bytes(b"fast, retrained")
    assert plane.load("fast") == ""
    assert plane.describe("fast").version == 2
    assert plane.versions("fast") == ["2", "1"]  # the first drains while it is held
    answer = held.infer(PredictRequest.from_columns({"x0": [1.0], "x1": [2.0]}))
    assert answer.version == 1 and answer.prediction.predictions == [4.0]
    assert plane.infer("fast", None, PredictRequest.from_rows([[1.0, 2.0]])).version == 2
    plane.release(held)
    wait_until(lambda: plane.versions("fast") == ["2"], 5)  # drained, then stopped


def test_openapi_describes_the_versions_served(
    ready: tuple[DataPlane, FlaskClient], folder: Path
) -> None:
    """A reloaded model answers at /versions/2: the document no longer says only "1"."""
    plane, client = ready
    (folder / "fast.joblib").write_bytes(b"fast, retrained")
    assert plane.load("fast") == ""
    document = client.get("/openapi.json").json
    route = document["paths"]["/v2/models/{model_name}/versions/{model_version}"]
    version = next(p for p in route["get"]["parameters"] if p["name"] == "model_version")
    assert "enum" not in version["schema"] and version["schema"]["type"] == "string"
    assert "2" in version["schema"]["examples"]
    assert client.get("/v2/models/fast/versions/2").status_code == 200


# -- a real server ---------------------------------------------------------------------------


class SlowToLoad:
    """Unpickled in the model host, it is ``tests.models.slow_reloading_chaos()``: a model
    whose load takes 8 s."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (slow_reloading_chaos, ())


def _listening(server: Any) -> str:
    """The server's address, read from its listening socket (the ready banner comes only once
    every model has loaded)."""

    def port() -> int | None:
        found = psutil.Process(server.proc.pid).net_connections()
        return next((c.laddr.port for c in found if c.status == psutil.CONN_LISTEN), None)

    return f"http://127.0.0.1:{wait_until(port, 30)}"


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(120)
def test_a_server_is_loading_until_the_slow_model_of_its_folder_has_loaded(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    joblib.dump(ChaosModel(), folder / "fast.joblib")
    joblib.dump(SlowToLoad(), folder / "slow.joblib")
    with running_server([str(folder), "--no-watch"], cwd=tmp_path, ready=False) as server:
        url = _listening(server)

        def fast_serves_while_slow_loads() -> Any:
            answer = requests.get(f"{url}/health", timeout=10)
            models = answer.json().get("models", {})
            fast = models.get("fast", {}).get("status")
            return [answer] if fast == "ready" else None  # a 503 Response is falsy

        (answer,) = wait_until(fast_serves_while_slow_loads, 60)
        assert answer.status_code == 503 and answer.json()["status"] == "loading", answer.text
        assert answer.json()["models"]["slow"]["status"] == "loading"
        assert requests.get(f"{url}/v2/health/ready", timeout=10).status_code == 503
        assert requests.get(f"{url}/v2/models/fast/ready", timeout=10).status_code == 200
        started = time.monotonic()
        server.wait_ready(60)  # the banner: every model of the start has loaded
        health = requests.get(f"{url}/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ready", health.text
        assert requests.get(f"{url}/v2/health/ready", timeout=10).json() == {"ready": True}
        assert time.monotonic() - started < 60


def test_the_page_shows_the_version_held_and_a_file_that_did_not_load(
    ready: tuple[DataPlane, FlaskClient], models: Models, folder: Path
) -> None:
    plane, client = ready
    (folder / "fast.joblib").write_bytes(b"fast, retrained")
    assert plane.load("fast") == ""
    models["fast"].load_error = "ValueError: not a model"
    (folder / "fast.joblib").write_bytes(b"fast, broken")
    assert "not a model" in plane.load("fast")
    page = client.get("/models/fast/").text
    assert 'id="model-version">2 (the file was reloaded 1 time since' in page
    assert 'id="file-problem"' in page and "version 2 keeps serving" in page
    health = client.get("/models/fast/health").json
    assert health["version"] == 2 and "not a model" in health["file_problem"]
    listing = client.get("/").text  # a folder of two, no default: the list page
    assert "/models/fast/" in listing and "/models/slow/" in listing


def test_the_only_model_unloaded_can_be_loaded_again_from_its_file(
    models: Models, folder: Path
) -> None:
    """A single file is a folder of one: after an unload its entry is gone, not its file, so a
    load by name finds the file again (a new user's trial: it answered 404 'none yet')."""
    registry = Registry(Settings(model=folder / "fast.joblib"), models.make_backend)
    _start(registry)
    plane = DataPlane(registry)
    client = create_app(Settings(model=folder / "fast.joblib"), plane=plane).test_client()
    try:
        wait_until(lambda: plane.health().ready, 20)
        assert client.post("/v2/repository/models/fast/unload").status_code == 200
        assert client.get("/health").status_code == 503
        assert client.post("/predict", json=[{"x0": 1, "x1": 2}]).status_code == 404
        loaded = client.post("/v2/repository/models/fast/load")
        assert loaded.status_code == 200, loaded.json
        assert client.post("/predict", json=[{"x0": 1, "x1": 2}]).status_code == 200
        assert client.get("/health").status_code == 200
        # a name that is not the one file is still no model (the folder's others are not served)
        assert client.post("/v2/repository/models/slow/load").status_code == 404
    finally:
        registry.close()


def test_an_unloaded_model_stays_in_the_repository_index_as_unavailable(
    ready: tuple[DataPlane, FlaskClient], folder: Path
) -> None:
    """A new user's finding (issue 23): an unloaded model left the OIP repository index, as
    if its file were gone; Triton lists it UNAVAILABLE with the reason "unloaded". It is
    listed so until it loads again, or its file leaves the folder."""
    _, client = ready
    assert client.post("/v2/repository/models/slow/unload").status_code == 200
    index = client.post("/v2/repository/index").json
    assert {"name": "slow", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    assert [m["name"] for m in index if m["state"] == "READY"] == ["fast"]
    assert client.post("/v2/repository/models/slow/load").status_code == 200
    index = client.post("/v2/repository/index").json
    assert {"name": "slow", "state": "READY", "version": "2"} in index, index
    assert client.post("/v2/repository/models/slow/unload").status_code == 200
    (folder / "slow.joblib").unlink()
    index = client.post("/v2/repository/index").json
    assert [m["name"] for m in index] == ["fast"], index

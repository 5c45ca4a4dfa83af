"""Fixtures: models trained at test time from scikit-learn's bundled data, written to disk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import psutil
import pytest

from tests.helpers import JOB_CLIENTS, close_jobs, model_hosts

# pip's cache, as it was before the tests isolated XDG_CACHE_HOME (fresh venvs reuse it).
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo model is trained into a cache of the test run's own, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    # the prediction log (issue 26) goes to the data folder: the run's own too, never the user's
    old_data = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data"))
    for key in [k for k in os.environ if k.startswith("WINSERVE_")]:
        del os.environ[key]
    yield cache
    for name, value in (("XDG_CACHE_HOME", old), ("XDG_DATA_HOME", old_data)):
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_numeric_library() -> Iterator[None]:
    """The test process's own numeric work (training the zoo's models, the in-process models of
    the fast layer) runs on one BLAS/OpenMP thread: the same results, but two threads of
    OpenBLAS or OpenMP spin against each other on a busy machine (issue 23: the digits fit took
    22 s with two threads and 0.4 s with one, at load 11 on 2 cores; six model-heavy modules of
    the fast layer 11.3 -> 7-8.5 s of CPU). No environment variable is set, so the servers and
    model hosts the tests start keep their own thread pools; OpenMP's limit holds in the
    threads that set it (this one)."""
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime, to be limited)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Every process a test starts is gone when it ends (a server shared by a module, and the
    hosts it restarts, belong to the module's fixture)."""
    before = {p.pid for p in model_hosts()}
    yield
    leftovers = [p for p in model_hosts() if p.pid not in before and _parent(p) not in before]
    # a process already on its way out (a browser tab's renderer after its page closed) gets a
    # moment; whatever is still alive after it was left behind
    _, alive = psutil.wait_procs(leftovers, timeout=3)
    described = []
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            described.append(" ".join(proc.cmdline())[:200])
            proc.kill()
    assert not described, f"processes left behind: {described}"


@pytest.fixture(autouse=True)
def close_job_folders() -> Iterator[None]:
    """The scoring folders of the apps ``tests.helpers.jobs_client`` made go when the test ends."""
    yield
    while JOB_CLIENTS:
        close_jobs(JOB_CLIENTS.pop())


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    species = iris.target.map(dict(enumerate(iris.target_names)))
    return iris.data, species


def diabetes_with_text() -> tuple[pd.DataFrame, pd.Series]:
    """Diabetes data with two text columns, as a user's DataFrame often has."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["sex"] = (frame["sex"] > 0).map({True: "female", False: "male"})
    frame["bmi_band"] = pd.cut(frame["bmi"], 3, labels=["low", "mid", "high"]).astype(str)
    return frame, data.target


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def iris_forest(models_dir: Path) -> Path:
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris_frame()
    path = models_dir / "iris forest.joblib"  # a space, as in "My Models"
    joblib.dump(RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y), path)
    return path


@pytest.fixture(scope="session")
def text_pipeline(models_dir: Path) -> Path:
    """A regressor pipeline whose input has string columns, fitted on a DataFrame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = diabetes_with_text()
    text = ["sex", "bmi_band"]
    numbers = [c for c in x.columns if c not in text]
    model = make_pipeline(
        ColumnTransformer([("text", OneHotEncoder(), text), ("num", StandardScaler(), numbers)]),
        Ridge(),
    )
    path = models_dir / "diabetes_text.joblib"
    joblib.dump(model.fit(x, y), path)
    return path


@pytest.fixture(scope="session")
def array_regressor(models_dir: Path) -> Path:
    """Fitted on a plain array: no column names, only a column count."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    x, y = load_diabetes(return_X_y=True)
    path = models_dir / "array.pkl"
    joblib.dump(LinearRegression().fit(x, y), path, compress=3)
    return path


@pytest.fixture
def logged_forest(tmp_path: Path, iris_forest: Path) -> Iterator[tuple[Any, Any]]:
    """The app over a local host of the iris forest with a prediction log of its own (a
    real writer, flushing every 50 ms): ``(client, log)``."""
    from winserve.backends.local import LocalBackend
    from winserve.model_info import ModelSpec
    from winserve.predlog.writer import PredictionLog
    from winserve.settings import Settings
    from winserve.web import create_app

    backend = LocalBackend(ModelSpec(str(iris_forest)))
    backend.start()
    backend.wait_ready(60)
    plog = PredictionLog(tmp_path / "log.sqlite", interval=0.05)
    plog.start()
    app = create_app(Settings(), backend, prediction_log=plog)
    yield app.test_client(), plog
    plog.close()
    close_jobs(app)
    backend.close()


@pytest.fixture
def pools() -> Iterator[list[Any]]:
    """Pools a test starts (``PoolBackend``), closed after it."""
    started: list[Any] = []
    yield started
    for pool in started:
        pool.close()

"""A linear model's answers from its arithmetic alone (issue 29, ``winserve.host.linear``): for
an exact LogisticRegression, LinearRegression or Ridge, alone or after exact StandardScalers,
a finite number matrix is answered without scikit-learn's input checks, and the answers are
the model's own to the byte; anything else, and any other input, keeps the model's methods."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from winserve.backends.pool import PoolBackend
from winserve.host import ModelHost, linear
from winserve.host.inputs import plain
from winserve.model_info import ModelSpec
from winserve.rows import CALL_STARTS

pytestmark = pytest.mark.timeout(120)

WIDTH = 5


def _rows(count: int, seed: int) -> Any:
    """Rows over several orders of magnitude, within float32, some far from the training."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 3, (count, WIDTH)) * 10.0 ** rng.integers(-3, 4, (count, WIDTH))
    rows[0] = [1e30, -1e30, 0.0, 5e-300, 1.0]  # large scores: softmax's and expit's edges
    return rows


def _trained(kind: str) -> Any:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (300, WIDTH))
    score = x @ np.arange(1.0, WIDTH + 1) + rng.normal(0, 1, 300)
    three = np.digitize(score, [-3.0, 3.0])
    models: dict[str, Any] = {
        "scaled three classes, str": (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            np.array(["low", "mid", "high"])[three],
        ),
        "two classes, int": (LogisticRegression(), (score > 0).astype(int)),
        "two classes, bool, scaled without mean": (
            make_pipeline(StandardScaler(with_mean=False), LogisticRegression()),
            score > 0,
        ),
        "two scalers, three int classes": (
            make_pipeline(StandardScaler(), StandardScaler(), LogisticRegression()),
            three,
        ),
        "linear regression": (LinearRegression(), score),
        "linear regression, two outputs": (LinearRegression(), np.c_[score, -2 * score]),
        "scaled ridge": (make_pipeline(StandardScaler(), Ridge(alpha=0.5)), score),
    }
    model, y = models[kind]
    return model.fit(x, y)


KINDS = [
    "scaled three classes, str",
    "two classes, int",
    "two classes, bool, scaled without mean",
    "two scalers, three int classes",
    "linear regression",
    "linear regression, two outputs",
    "scaled ridge",
]


def _save(model: Any, folder: Path, name: str = "linear") -> Path:
    """The model file and a reference sample beside it (the load checks on its rows)."""
    path = folder / f"{name}.joblib"
    joblib.dump(model, path)
    columns = [f"x{i}" for i in range(WIDTH)]
    pd.DataFrame(_rows(50, 3), columns=columns).to_csv(folder / f"{name}.reference.csv")
    return path


def _loaded(path: Path) -> ModelHost:
    host = ModelHost()
    record = host.load(ModelSpec(str(path)))
    assert record["ok"], record
    return host


def _own(model: Any, rows: Any, proba: bool) -> str:
    """The model's own answer in process, as the web process would get it."""
    probabilities = plain(model.predict_proba(rows)) if proba else None
    return json.dumps([plain(model.predict(rows)), probabilities])


def _sent(answer: dict[str, Any]) -> str:
    assert answer["ok"], answer
    return json.dumps([answer["predictions"], answer["probabilities"]])


def _fails(X: Any) -> Any:
    raise RuntimeError("the model's own method was called")


@pytest.mark.parametrize("kind", KINDS)
def test_answers_are_the_models_own_to_the_byte(tmp_path: Path, kind: str) -> None:
    model = _trained(kind)
    host = _loaded(_save(model, tmp_path))
    assert host.info()["extra"]["linear_direct"] is True
    classifier = hasattr(model, "predict_proba")
    rows = _rows(400, 11)
    # a request's rows, one row, a job's chunk (column-major: rows.COLUMN_MAJOR), each
    # answered as the model answers that same matrix
    for asked in (rows, rows[1:2], np.asfortranarray(rows)):
        for proba in (True, False) if classifier else (False,):
            got = host.predict({"matrix": asked.copy(order="K")}, proba)
            assert _sent(got) == _own(model, asked, proba)
    # and it is the arithmetic that answered: the model's own methods are not called
    host._model.predict = host._model.predict_proba = _fails
    assert _sent(host.predict({"matrix": rows.copy()}, classifier)) == _own(model, rows, classifier)
    fortran = np.asfortranarray(rows)
    answered = host.predict({"matrix": fortran.copy(order="F")}, classifier)
    assert _sent(answered) == _own(model, fortran, classifier)


def test_a_regressor_asked_for_probabilities_keeps_its_own_error(tmp_path: Path) -> None:
    host = _loaded(_save(_trained("linear regression"), tmp_path))
    answer = host.predict({"matrix": _rows(3, 1)}, True)
    assert not answer["ok"]
    assert "predict_proba" in answer["error"]["message"]


def test_a_nan_gets_the_models_own_error(tmp_path: Path) -> None:
    """A matrix with a NaN is not answered by the arithmetic (it would give NaN): the model's
    own checks refuse it, with their message."""
    model = _trained("scaled three classes, str")
    host = _loaded(_save(model, tmp_path))
    rows = _rows(3, 2)
    rows[1, 2] = np.nan
    answer = host.predict({"matrix": rows}, False)
    assert not answer["ok"]
    assert "NaN" in answer["error"]["message"]


def test_values_beyond_float32_are_the_models_own(tmp_path: Path) -> None:
    """A finite value float32 cannot hold keeps the model's own methods (and answers)."""
    model = _trained("two classes, int")
    host = _loaded(_save(model, tmp_path))
    rows = _rows(4, 5)
    rows[2, 0] = 1e300
    host._model.predict_proba = _fails  # not called by the arithmetic, but by the model's way
    answer = host.predict({"matrix": rows}, True)
    assert not answer["ok"]
    assert "own method was called" in answer["error"]["message"]


class OwnLogistic(LogisticRegression):
    """A subclass: its predict could be anything."""

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X), dtype=int)


def test_only_the_exact_classes_in_the_releases_read(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(0).normal(size=(50, WIDTH))
    y = (x[:, 0] > 0).astype(int)
    assert linear.direct(LogisticRegression().fit(x, y)) is not None
    assert linear.direct(OwnLogistic().fit(x, y)) is None
    assert linear.direct(make_pipeline(MinMaxScaler(), LogisticRegression()).fit(x, y)) is None
    assert linear.direct(make_pipeline(StandardScaler(), OwnLogistic()).fit(x, y)) is None
    instance = LogisticRegression().fit(x, y)
    instance.predict_proba = _fails  # type: ignore[method-assign]
    assert linear.direct(instance) is None
    import sklearn

    for release in ("1.7.2", "1.10.0", "nightly"):
        monkeypatch.setattr(sklearn, "__version__", release)
        assert linear.direct(LogisticRegression().fit(x, y)) is None


def test_a_class_patched_by_other_code_keeps_its_own_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Code beside a model file (``<name>_code.py``) may patch scikit-learn's classes: a
    clipped Ridge.predict or a clipped StandardScaler.transform is the model's answer, so the
    arithmetic alone is not."""
    x = np.random.default_rng(0).normal(size=(50, WIDTH))
    ridge = Ridge().fit(x, x @ np.arange(1.0, WIDTH + 1))
    scaled = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, x[:, 0] > 0)
    assert linear.direct(ridge) is not None and linear.direct(scaled) is not None
    own_predict, own_transform = Ridge.predict, StandardScaler.transform
    monkeypatch.setattr(Ridge, "predict", lambda self, X: np.clip(own_predict(self, X), -5, 5))
    assert linear.direct(ridge) is None
    monkeypatch.setattr(
        StandardScaler,
        "transform",
        lambda self, X, copy=None: np.clip(own_transform(self, X), -1, 1),
    )
    assert linear.direct(scaled) is None
    monkeypatch.undo()
    monkeypatch.setattr(Pipeline, "predict", lambda self, X, **params: np.zeros(len(X)))
    assert linear.direct(scaled) is None


def test_the_load_checks_rows_far_from_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arithmetic that differs from the model's only far from its sample row (zeros here: no
    reference sample) is caught at load: the check adds rows of every magnitude."""
    x = np.random.default_rng(0).normal(size=(50, WIDTH))
    path = tmp_path / "ridge.joblib"
    joblib.dump(Ridge().fit(x, x @ np.arange(1.0, WIDTH + 1)), path)
    assert _loaded(path).info()["extra"]["linear_direct"] is True
    real = linear.direct

    def clipped(model: Any) -> Any:  # a mistake the sample row alone would not show
        run = real(model)
        assert run is not None
        return lambda X, proba: (np.clip(run(X, proba)[0], -50, 50), None)

    monkeypatch.setattr(linear, "direct", clipped)
    assert _loaded(path).info()["extra"]["linear_direct"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_a_rows_answer_does_not_depend_on_the_rows_batched_with_it(
    tmp_path: Path, kind: str
) -> None:
    """The pool merges users' calls into one (CALL_STARTS): each call's rows are answered as
    that call alone, to the last digit (in one product, BLAS rounded a row by its place)."""
    model = _trained(kind)
    host = _loaded(_save(model, tmp_path))
    classifier = hasattr(model, "predict_proba")
    rows = _rows(96, 5)
    starts = [0, 1, 2, 5, 6, 13, 14, 15, 40, 41, 90, 95]  # calls of 1 to 49 rows
    ends = [*starts[1:], len(rows)]
    merged = host.predict({"matrix": rows.copy(), CALL_STARTS: starts}, classifier)
    alone = [
        host.predict({"matrix": rows[a:b].copy()}, classifier)
        for a, b in zip(starts, ends, strict=True)
    ]
    assert merged["predictions"] == [p for answer in alone for p in answer["predictions"]]
    if classifier:
        shares = [p for answer in alone for p in answer["probabilities"]]
        assert merged["probabilities"] == shares


def test_only_a_float64_matrix_of_the_models_width() -> None:
    x = np.random.default_rng(0).normal(size=(50, WIDTH))
    run = linear.direct(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, x[:, 0] > 0))
    assert run is not None
    assert run(x.astype(np.float32), False) is None
    assert run(x[:, :3].copy(), False) is None
    assert run(x[::2], False) is None  # neither row- nor column-major
    assert run(np.asfortranarray(x), False) is not None  # a job's chunk (rows.COLUMN_MAJOR)
    assert run(pd.DataFrame(x), False) is None
    kept = x.copy()
    assert run(x, True) is not None
    assert np.array_equal(x, kept)  # the caller's matrix is left as it was


@pytest.mark.spawn
def test_spawned_host_answers_as_the_model(tmp_path: Path, pools: list[PoolBackend]) -> None:
    """In a real spawned model host, through the pool as a request and a CSV chunk call it."""
    model = _trained("scaled three classes, str")
    pool = PoolBackend(ModelSpec(str(_save(model, tmp_path))))
    pools.append(pool)
    pool.start()
    info = pool.wait_ready(60)
    assert info.extra["linear_direct"] is True
    rows = _rows(400, 13)
    result = pool.predict({"matrix": rows}, True)
    assert json.dumps([result.predictions, result.probabilities]) == _own(model, rows, True)
    alone = pool.predict({"matrix": rows[5:6]}, False)
    assert json.dumps([alone.predictions, None]) == _own(model, rows[5:6], False)


@pytest.mark.spawn
def test_concurrent_users_each_get_their_rows_answer_alone(
    tmp_path: Path, pools: list[PoolBackend]
) -> None:
    """16 users at once through the pool (which batches them): every answer is the one the
    row gets alone, to the last digit, whoever it was batched with."""
    import concurrent.futures

    model = _trained("linear regression")
    pool = PoolBackend(ModelSpec(str(_save(model, tmp_path))))
    pools.append(pool)
    pool.start()
    pool.wait_ready(60)
    rows = _rows(320, 17)
    wanted = [json.loads(_own(model, rows[i : i + 1], False))[0][0] for i in range(len(rows))]

    def asked(i: int) -> Any:
        return pool.predict({"matrix": rows[i : i + 1].copy()}, False).predictions[0]

    with concurrent.futures.ThreadPoolExecutor(16) as users:
        got = list(users.map(asked, range(len(rows))))
    differing = [i for i, (g, w) in enumerate(zip(got, wanted, strict=True)) if g != w]
    assert not differing, f"{len(differing)} rows differ from the row alone: {differing[:5]}"

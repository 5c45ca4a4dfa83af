"""A classifier's labels from its probabilities (issue 29, ``winserve.host.labels``): for the
classes on the list, one ``predict_proba`` call answers a request for probabilities, and the
answers are the two-call way's to the byte; anything else keeps the two calls. A forest's
probabilities are its trees summed in the host (``winserve.host.forest_proba``), to the bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from tests.label_models import OwnPredictForest, frame, save, trained
from winserve.backends.pool import PoolBackend
from winserve.host import ModelHost, forest_proba, labels
from winserve.host.inputs import plain
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(120)

ROWS = 400  # rows asked for, beyond the 200 the load checked on

# (estimator, labels, in a pipeline after the zoo's encoder)
CASES = [
    ("forest", "str", False),
    ("forest", "int", False),
    ("forest", "bool", False),
    ("forest", "two", False),  # two outputs
    ("extra_trees", "int", False),
    ("extra_trees", "str", False),
    ("tree", "str", False),
    ("tree", "int", False),
    ("tree", "two", False),
    ("extra_tree", "bool", False),
    ("boosting", "int", False),
    ("boosting", "str", False),
    ("boosting", "bool", False),
    ("forest", "str", True),
    ("forest", "int", True),
    ("boosting", "str", True),
]


def _columns(rows: Any) -> dict[str, Any]:
    return {"columns": {c: rows[c].tolist() for c in rows.columns}}


def _loaded(path: Path) -> ModelHost:
    host = ModelHost()
    record = host.load(ModelSpec(str(path)))
    assert record["ok"], record
    return host


def _as_sent(answer: dict[str, Any]) -> str:
    """The answer as the web process gets it, to the byte (types included: "1" ≠ 1 ≠ True)."""
    assert answer["ok"], answer
    return json.dumps([answer["predictions"], answer["probabilities"]])


def _own(model: Any, rows: Any) -> list[Any]:
    """The model's own predict, in process, as plain data."""
    return plain(model.predict(rows))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("maker", "kind", "pipeline"), CASES)
def test_one_call_answers_as_two_calls(
    tmp_path: Path, maker: str, kind: str, pipeline: bool
) -> None:
    model, columns = trained(maker, kind, pipeline)
    path = save(model, columns, tmp_path, f"{maker}_{kind}")
    host = _loaded(path)
    assert host.info()["extra"]["labels_from"] == "predict_proba"
    forest = maker in ("forest", "extra_trees") and not pipeline
    assert host.info()["extra"]["forest_summed"] == forest  # host.forest_proba
    rows = frame(ROWS, 11)[columns]
    payloads = [_columns(rows), _columns(rows.head(1))]
    if not pipeline:
        payloads.append({"matrix": rows.to_numpy(dtype=np.float64)})
    for payload in payloads:
        one, alone = host.predict(payload, True), host.predict(payload, False)
        kept = host._derive, host._summed
        host._derive = host._summed = None  # the model's own predict and predict_proba
        two, two_alone = host.predict(payload, True), host.predict(payload, False)
        host._derive, host._summed = kept
        assert _as_sent(one) == _as_sent(two)
        assert _as_sent(alone) == _as_sent(two_alone)
        asked = rows.head(len(one["predictions"]))
        assert json.dumps(one["predictions"]) == json.dumps(_own(joblib.load(path), asked))
    first = one["predictions"][0]
    expected = {"str": str, "int": int, "bool": bool, "two": list}[kind]
    assert type(first) is expected  # a str label stays str, an int int, a bool bool


def _fails(X: Any) -> Any:
    raise RuntimeError("the model's own method was called")


def test_the_labels_come_from_the_one_predict_proba_call(tmp_path: Path) -> None:
    """With the boosting's predict made to fail after load, a request with probabilities still
    answers (it never called predict); one without asks predict as before."""
    model, columns = trained("boosting", "int")
    host = _loaded(save(model, columns, tmp_path, "boosting"))
    rows = _columns(frame(50, 5)[columns])
    expected = host.predict(rows, True)
    host._model.predict = _fails
    assert _as_sent(host.predict(rows, True)) == _as_sent(expected)
    assert not host.predict(rows, False)["ok"]


def test_a_forest_sums_its_trees_in_the_host(tmp_path: Path) -> None:
    """A forest's answers, labels alone or with probabilities, come from its trees summed in
    the host (neither its predict nor its predict_proba is called), identical to its own."""
    model, columns = trained("forest", "two")
    host = _loaded(save(model, columns, tmp_path, "forest"))
    rows = _columns(frame(50, 5)[columns])
    expected = host.predict(rows, True), host.predict(rows, False)
    host._model.predict = host._model.predict_proba = _fails
    assert _as_sent(host.predict(rows, True)) == _as_sent(expected[0])
    assert _as_sent(host.predict(rows, False)) == _as_sent(expected[1])
    host._derive = None  # off: the model's own methods again
    assert not host.predict(rows, True)["ok"]


def test_only_an_exact_forest_of_exact_trees_in_one_job_is_summed() -> None:
    forest, _ = trained("forest", "str")
    assert forest_proba.summed(forest) is not None
    forest.n_jobs = 2  # the order of additions would be the threads'
    assert forest_proba.summed(forest) is None
    forest.n_jobs = None
    forest.estimators_[3].predict_proba = _fails  # a tree's own, set on the object
    assert forest_proba.summed(forest) is None
    own, _ = trained("own_predict", "str")
    assert forest_proba.summed(own) is None
    tree, _ = trained("tree", "str")
    assert forest_proba.summed(tree) is None


def test_a_subclass_keeps_its_own_predict(tmp_path: Path) -> None:
    model, columns = trained("own_predict", "str")
    host = _loaded(save(model, columns, tmp_path, "own"))
    assert host.info()["extra"]["labels_from"] == "predict"
    rows = frame(100, 5)[columns]
    answer = host.predict(_columns(rows), True)
    own = _own(model, rows)
    assert answer["predictions"] == own
    argmax = plain(model.classes_.take(np.argmax(model.predict_proba(rows), axis=1)))
    assert own != argmax  # its predict is not the argmax: the test can tell them apart


def test_a_model_the_check_disagrees_with_keeps_two_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class put on the list whose predict is not the argmax of its probabilities (a
    uniform dummy draws at random): the load's check on the reference rows turns it off."""
    from sklearn.dummy import DummyClassifier

    monkeypatch.setitem(labels.ALLOWED, ("sklearn.dummy", "DummyClassifier"), "forest")
    rows = frame(300, 0)[["size", "rooms"]]
    model = DummyClassifier(strategy="uniform", random_state=0).fit(rows, np.arange(300) % 3)
    assert labels.derivation(model) is not None  # on the list: only the check stops it
    host = _loaded(save(model, ["size", "rooms"], tmp_path, "dummy"))
    assert host.info()["extra"]["labels_from"] == "predict" and host._derive is None
    asked = frame(40, 5)[["size", "rooms"]]
    assert host.predict(_columns(asked), True)["predictions"] == _own(model, asked)


def test_not_on_the_list() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = frame(100, 0)[["size", "rooms"]]
    label = np.arange(100) % 2
    assert labels.derivation(LogisticRegression().fit(rows, label)) is None
    assert labels.derivation(OwnPredictForest(n_estimators=3).fit(rows, label)) is None
    scaled = make_pipeline(StandardScaler(), OwnPredictForest(n_estimators=3)).fit(rows, label)
    assert labels.derivation(scaled) is None  # a pipeline: its final step's class decides
    forest, _ = trained("forest", "str")
    assert labels.derivation(forest) is not None
    assert labels.derivation(make_pipeline(StandardScaler(), forest)) is not None
    forest.predict_proba = forest.predict_proba  # set on the object: not the class's own
    assert labels.derivation(forest) is None


@pytest.mark.parametrize(
    ("maker", "kind", "summed"),
    [
        ("regression_forest", "price", True),
        ("regression_forest", "prices", True),  # two outputs
        ("regression_extra_trees", "price", True),
        ("own_regression", "price", False),  # a subclass keeps its own predict
    ],
)
def test_a_regression_forest_sums_its_trees_in_the_host(
    tmp_path: Path, maker: str, kind: str, summed: bool
) -> None:
    model, columns = trained(maker, kind)
    host = _loaded(save(model, columns, tmp_path, maker))
    assert host.info()["extra"]["forest_summed"] is summed
    assert (host._summed_predict is not None) is summed
    rows = frame(ROWS, 11)[columns]
    for payload in (_columns(rows), _columns(rows.head(1)), {"matrix": rows.to_numpy()}):
        answer = host.predict(payload, False)
        asked = rows.head(len(answer["predictions"]))
        assert json.dumps(answer["predictions"]) == json.dumps(_own(model, asked))
    if summed:
        host._model.predict = _fails  # answered without the model's own predict
        assert host.predict(_columns(rows), False)["ok"]
        assert forest_proba.summed_predict(host._model) is None  # set on the object


@pytest.mark.spawn
@pytest.mark.parametrize(
    ("maker", "kind", "pipeline", "way"),
    [
        ("forest", "str", True, "predict_proba"),
        ("forest", "int", False, "predict_proba"),
        ("boosting", "int", False, "predict_proba"),
        ("own_predict", "str", False, "predict"),
    ],
)
def test_spawned_host_answers_as_the_model(
    tmp_path: Path, pools: list[PoolBackend], maker: str, kind: str, pipeline: bool, way: str
) -> None:
    """In a real spawned model host: the page's and CSV's kind of call (probabilities) gives
    the model's own predict and predict_proba, to the byte."""
    model, columns = trained(maker, kind, pipeline)
    pool = PoolBackend(ModelSpec(str(save(model, columns, tmp_path, maker))))
    pools.append(pool)
    pool.start()
    info = pool.wait_ready(60)
    assert info.extra["labels_from"] == way
    rows = frame(ROWS, 11)[columns]
    result = pool.predict(_columns(rows), True)
    assert json.dumps(result.predictions) == json.dumps(_own(model, rows))
    assert json.dumps(result.probabilities) == json.dumps(plain(model.predict_proba(rows)))
    alone = pool.predict(_columns(rows.head(1)), False)  # the lone /predict row
    assert json.dumps(alone.predictions) == json.dumps(_own(model, rows.head(1)))


def test_rows_it_cannot_be_sure_of_ask_predict() -> None:
    """A boosting's near tie and a multi-output tree's row without a value above zero (its
    padding columns could win predict's argmax) give None: the call asks predict."""
    classes = np.array(["a", "b", "c"])
    sure = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert labels._boosting(classes, sure).tolist() == ["b", "a"]
    tie = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    assert labels._boosting(classes, tie) is None
    assert labels._boosting(classes[:2], np.array([[0.5, 0.5]])) is None
    outputs = [np.array([0, 1]), np.array([5, 6, 7])]
    fine = [np.array([[0.3, 0.7]]), np.array([[0.1, 0.1, 0.8]])]
    assert labels._per_output(outputs, fine, 2, True).tolist() == [[1, 7]]
    empty = [np.array([[0.3, 0.7]]), np.array([[0.0, 0.0, 0.0]])]
    assert labels._per_output(outputs, empty, 2, True) is None
    assert labels._per_output(outputs, empty, 2, False).tolist() == [[1, 5]]  # a forest's


def test_forest_sums_only_under_the_scikit_learn_releases_read() -> None:
    """A later (or unparsable) scikit-learn release calls the forest's own predict_proba."""
    from winserve.host import forest_proba

    assert forest_proba._read_release("1.3.2")
    assert forest_proba._read_release("1.9.1")
    assert not forest_proba._read_release("1.10.0")
    assert not forest_proba._read_release("2.0.0")
    assert not forest_proba._read_release("1.2.2")
    assert not forest_proba._read_release("nightly")


def test_a_class_patched_by_other_code_keeps_its_own_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Code beside a model file may patch scikit-learn's classes: then neither the labels from
    probabilities nor the forest's sums stand in for the patched methods."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    forest, _ = trained("forest", "str")
    assert labels.derivation(forest) is not None and forest_proba.summed(forest) is not None
    own_predict = RandomForestClassifier.predict
    monkeypatch.setattr(RandomForestClassifier, "predict", lambda self, X: own_predict(self, X))
    assert labels.derivation(forest) is None
    monkeypatch.undo()
    own_tree = DecisionTreeClassifier.predict_proba
    monkeypatch.setattr(
        DecisionTreeClassifier, "predict_proba", lambda self, X, check_input=True: own_tree(self, X)
    )
    assert forest_proba.summed(forest) is None
    monkeypatch.undo()
    assert labels.derivation(forest) is not None and forest_proba.summed(forest) is not None

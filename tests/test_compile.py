"""``--compile onnx`` (issue 16): a scikit-learn model converted with skl2onnx at load answers from
onnxruntime only after it answered the probe rows as scikit-learn does; else scikit-learn answers
and winserve says why.

Served compiled models are held to tests/contracts.py's contract (``FormatContract``,
subclassed here on the compiled cases), against the compiled model's own in-process answers
(onnxruntime's float32 values, which serving must pass on unchanged); those answers are
compared with scikit-learn's: the same labels, probabilities within 1e-6, as verification
demands.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from tests import zoo
from tests.contracts import FormatContract, Served
from tests.helpers import running_server, server_env
from winserve.host import compile_probes, compiled, describe

# onnxruntime and skl2onnx are imported by the tests that compile, not to collect this module:
# the fast layer collects it too (issue 23)
NEEDS = ("onnxruntime", "skl2onnx")
pytestmark = [
    pytest.mark.spawn,
    pytest.mark.server,
    pytest.mark.skipif(
        any(find_spec(n) is None for n in NEEDS), reason=f"needs {', '.join(NEEDS)}"
    ),
]
PROBA_TOLERANCE = compile_probes.PROBA_TOLERANCE


def forest() -> zoo.Case:
    """A forest on a DataFrame of numbers (no missing values: those rows go to scikit-learn,
    tested below)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = zoo._rng()
    columns = ["a", "b", "c", "d"]
    frame = pd.DataFrame(rng.normal(size=(400, 4)), columns=columns)
    labels = np.where(frame["a"] + frame["b"] * frame["c"] > 0, "yes", "no")
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(frame, labels)
    rows = pd.DataFrame(rng.normal(size=(zoo.ROWS, 4)), columns=columns)
    return zoo.Case("compiled_forest", model, rows, proba=True)


def category_pipeline() -> zoo.Case:
    """A number and a category column, one-hot encoded, a logistic regression: one ONNX input
    per column, a string tensor for the category."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = zoo._rng()
    frame = zoo._mixed_frame(400, rng)[["tenure", "region"]].fillna({"tenure": 30.0})
    labels = (frame["tenure"] / 30 + (frame["region"] == "east") > 1.2).astype(int)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), ["tenure"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, labels)
    rows = zoo._mixed_frame(zoo.ROWS, zoo._rng())[["tenure", "region"]].fillna({"tenure": 3.0})
    return zoo.Case(
        "compiled_category_pipeline", model, rows, proba=True, scores="decision_function"
    )


BUILDERS = {b.__name__: b for b in (forest, category_pipeline)}


def in_process(case: zoo.Case) -> tuple[dict[str, Any], compiled.CompiledModel]:
    """The compiled model's answers in this process, and the model."""
    model = compiled.compile_model(case.model, {})
    answers = zoo.expected(zoo.Case(case.name, model, case.rows, case.proba, case.scores))
    return answers, model


@pytest.fixture(scope="module", params=list(BUILDERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    case = BUILDERS[request.param]()
    folder = tmp_path_factory.mktemp(case.name)
    path = folder / f"{case.name}.joblib"
    joblib.dump(case.model, path)
    want, _ = in_process(case)
    with running_server([str(path), "--compile", "onnx"], cwd=folder) as server:
        yield Served(case, server.url, want)


class TestContract(FormatContract):
    """tests/contracts.py's contract, on this module's compiled cases."""


def test_the_compiled_model_is_served_and_says_so(served: Served) -> None:
    model = requests.get(f"{served.url}/model", timeout=10).json()
    assert model["runtime"].startswith("onnxruntime "), model["runtime"]
    assert "compiled, verified on" in model["runtime"]
    rows = int(model["runtime"].split("verified on ")[1].split(" rows")[0].replace(",", ""))
    assert rows >= compile_probes.MIN_PROBE_ROWS
    page = requests.get(f"{served.url}/", timeout=10).text
    assert "<dt>Answered by</dt><dd>onnxruntime " in page


@pytest.mark.parametrize("name", list(BUILDERS))
def test_compiled_answers_are_scikit_learns(name: str) -> None:
    case = BUILDERS[name]()
    want, model = in_process(case)
    assert "compiled, verified" in model.winserve_runtime
    assert model.predict(case.rows).tolist() == case.model.predict(case.rows).tolist()
    got = np.asarray(want["probabilities"])
    assert np.abs(got - case.model.predict_proba(case.rows)).max() <= PROBA_TOLERANCE
    assert type(model).__name__ == describe.model_type(case.model)  # the page names it so


def test_rows_with_a_missing_value_go_to_scikit_learn_when_the_graph_differs() -> None:
    """A forest takes NaN in scikit-learn (missing-value support in trees); the converted
    graph handles it otherwise, so verification sends such rows to scikit-learn."""
    case = forest()
    model = compiled.compile_model(case.model, {})
    rows = case.rows.copy()
    rows.loc[::3, "b"] = np.nan
    assert model.missing_to_sklearn
    assert model.predict(rows).tolist() == case.model.predict(rows).tolist()
    assert np.array_equal(model.predict_proba(rows), case.model.predict_proba(rows))


def test_probe_rows_sit_on_both_sides_of_every_threshold_and_its_float32_rounding() -> None:
    from sklearn.tree import DecisionTreeClassifier

    rng = zoo._rng()
    x = rng.normal(size=(200, 2))
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, x[:, 0] > x[:, 1])
    features = [{"name": "x0", "kind": "number"}, {"name": "x1", "kind": "number"}]
    rows = compile_probes.probe_rows(tree, features, {})
    assert len(rows) >= compile_probes.MIN_PROBE_ROWS
    for column, threshold in zip(tree.tree_.feature, tree.tree_.threshold, strict=True):
        if column < 0:
            continue
        seen = {row[f"x{column}"] for row in rows}
        single = np.float32(threshold)
        for value in (threshold, np.nextafter(threshold, np.inf), float(single)):
            assert float(value) in seen
        assert float(np.nextafter(single, np.float32(np.inf))) in seen


def float32_tie() -> tuple[Any, float]:
    """A scaler + tree whose split threshold sits between what scikit-learn computes for a
    row (float64, then rounded to float32 for the tree) and what the ONNX graph computes
    (float32 throughout): that row goes left in one and right in the other."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(3.3, 0.7, size=(200, 1))
    model = make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=1))
    model.fit(x, (x[:, 0] > 3.4).astype(int))
    scaler = model[0]
    graph = ort.InferenceSession(to_onnx(scaler, x[:1].astype(np.float32)).SerializeToString())
    value = np.float32(3.4)
    for _ in range(10_000):
        in_sklearn = float(np.float32((float(value) - scaler.mean_[0]) / scaler.scale_[0]))
        in_onnx = float(graph.run(None, {"X": np.array([[value]], dtype=np.float32)})[0][0, 0])
        if in_sklearn != in_onnx:
            break
        value = np.nextafter(value, np.float32(10))
    else:
        raise AssertionError("no row where float32 arithmetic differs")
    model[-1].tree_.threshold[0] = min(in_sklearn, in_onnx)
    return model, float(value)


def test_verification_rejects_a_float32_tie_and_falls_back(tmp_path: Path) -> None:
    model, value = float32_tie()
    path = tmp_path / "tie.joblib"
    joblib.dump(model, path)
    # the card's example is a probe row: the tie is on it
    path.with_suffix(".toml").write_text(f"[example]\nx0 = {value!r}\n", encoding="utf-8")
    with running_server([str(path), "--compile", "onnx"], cwd=tmp_path) as server:
        info = requests.get(f"{server.url}/model", timeout=10).json()
        assert info["runtime"].startswith("scikit-learn (--compile onnx fell back: "), info
        assert "answered differently" in info["runtime"] and "probe rows" in info["runtime"]
        banner = next(line for line in server.lines if line.strip().startswith("runtime"))
        assert "fell back" in banner
        answer = requests.post(f"{server.url}/predict", json=[{"x0": value}], timeout=10)
        assert answer.json()["predictions"] == model.predict([[value]]).tolist()
    checked = _check(path, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "  compile   onnx: NOT used, scikit-learn answers" in checked.stdout
    assert "fell back" in checked.stdout


def _check(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "winserve", "check", str(path), "--compile", "onnx"],
        cwd=cwd,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_reports_the_verdict_and_both_latencies(tmp_path: Path) -> None:
    case = forest()
    path = tmp_path / "forest.joblib"
    joblib.dump(case.model, path)
    result = _check(path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  compile   onnx: verified, onnxruntime answers" in result.stdout
    runtime = next(line for line in result.stdout.splitlines() if "runtime" in line)
    assert "one row" in runtime and runtime.count(" ms") == 2, runtime

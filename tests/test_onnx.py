""".onnx files served as winserve serves any model (issue 16): graphs built at test time (skl2onnx
from fitted scikit-learn models, and small graphs made with ``onnx.helper`` standing in for a
PyTorch export), each served by a real server and sent the same rows through every protocol and
the page. Answers must equal onnxruntime's own in-process answers on those rows exactly (the
same float32 values, compared to 1e-9 as tests/contracts.py does); and the source
scikit-learn model's to float32 tolerance: labels equal, probabilities and regression values
within 1e-5 (onnxruntime computes in float32, scikit-learn in float64).

The protocol and page tests are tests/contracts.py's ``FormatContract``, subclassed here
(``TestContract``, on this module's ``served`` ONNX cases), so an ONNX file is held to exactly the
zoo's contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from tests import zoo
from tests.contracts import FormatContract, Served
from tests.helpers import running_server

# onnx, onnxruntime and skl2onnx are imported where they are used, not to collect this module:
# the fast layer collects it too, and importing them cost it 0.3 s of CPU (issue 23)
NEEDS = ("onnx", "onnxruntime", "skl2onnx")
pytestmark = [
    pytest.mark.spawn,
    pytest.mark.server,
    pytest.mark.skipif(
        any(find_spec(n) is None for n in NEEDS), reason=f"needs {', '.join(NEEDS)}"
    ),
]
SKLEARN_TOLERANCE = 1e-5  # float32 (onnxruntime) against float64 (scikit-learn)


@dataclass
class OnnxCase(zoo.Case):
    graph: bytes = b""
    source: Any = None  # the scikit-learn model converted, when there is one


def _case(name: str, graph: Any, rows: pd.DataFrame, source: Any = None, **flags: Any) -> OnnxCase:
    return OnnxCase(name, None, rows, graph=graph.SerializeToString(), source=source, **flags)


def _numbers(n: int, width: int, rng: np.random.Generator, nan: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, width))
    if nan:
        x[rng.random(x.shape) < nan] = np.nan
    return x


def numeric_pipeline() -> OnnxCase:
    """Imputer + scaler + logistic regression on a NumPy array, converted with its ZipMap;
    the column names stored in the graph's metadata, as a user may add them."""
    from skl2onnx import to_onnx
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = zoo._rng()
    x = _numbers(400, 4, rng, nan=0.1)
    y = (np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 2]) > 0.2).astype(int) + (x[:, 1] > 1)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(x, y)
    graph = to_onnx(model, x[:1].astype(np.float32))
    names = ["age", "income", "debt", "visits"]
    entry = graph.metadata_props.add()
    entry.key, entry.value = "feature_names", json.dumps(names)
    rows = pd.DataFrame(_numbers(zoo.ROWS, 4, rng, nan=0.2), columns=names)
    return _case("onnx_numeric_pipeline", graph, rows, model, proba=True)


def forest_regressor() -> OnnxCase:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    rng = zoo._rng()
    x = _numbers(300, 3, rng)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, x[:, 0] * 2 - x[:, 1])
    graph = to_onnx(model, x[:1].astype(np.float32))
    rows = pd.DataFrame(_numbers(zoo.ROWS, 3, rng), columns=["x0", "x1", "x2"])
    return _case("onnx_forest_regressor", graph, rows, model, named=False)


def text_column_pipeline() -> OnnxCase:
    """One input per column as skl2onnx writes a DataFrame pipeline: a float tensor (with
    missing values, imputed in the graph) and a string tensor one-hot encoded; probabilities
    as a tensor (``zipmap: False``), string class labels."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = zoo._rng()
    frame = zoo._mixed_frame(400, rng)[["spend", "region"]]
    labels = np.where(frame["spend"].fillna(50) + 10 * (frame["region"] == "north") > 55, "a", "b")
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(), ["spend"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, labels)
    types = [("spend", FloatTensorType([None, 1])), ("region", StringTensorType([None, 1]))]
    graph = convert_sklearn(model, initial_types=types, options={"zipmap": False})
    rows = zoo._mixed_frame(zoo.ROWS, zoo._rng())[["spend", "region"]]
    return _case("onnx_text_column_pipeline", graph, rows, model, proba=True)


def _linear_graph(softmax: bool) -> Any:
    """MatMul + Add (+ Softmax): a three-class classifier as PyTorch would export it."""
    from onnx import TensorProto, checker, helper, numpy_helper

    rng = np.random.default_rng(3)
    weight = numpy_helper.from_array(rng.normal(size=(3, 3)).astype(np.float32), "weight")
    bias = numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "bias")
    nodes = [
        helper.make_node("MatMul", ["input", "weight"], ["product"]),
        helper.make_node("Add", ["product", "bias"], ["logits"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])],
        outputs,
        initializer=[weight, bias],
    )
    model = helper.make_model(
        graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8  # what older onnxruntime releases (the Windows lane's) read
    checker.check_model(model)
    return model


def softmax_classifier() -> OnnxCase:
    rows = pd.DataFrame(_numbers(zoo.ROWS, 3, zoo._rng()), columns=["x0", "x1", "x2"])
    return _case("onnx_softmax_classifier", _linear_graph(True), rows, proba=True, named=False)


def raw_logits() -> OnnxCase:
    """Only logits: served as three numbers per row, never turned into probabilities."""
    rows = pd.DataFrame(_numbers(zoo.ROWS, 3, zoo._rng()), columns=["x0", "x1", "x2"])
    return _case("onnx_raw_logits", _linear_graph(False), rows, named=False)


BUILDERS: dict[str, Callable[[], OnnxCase]] = {
    b.__name__: b
    for b in (
        numeric_pipeline,
        forest_regressor,
        text_column_pipeline,
        softmax_classifier,
        raw_logits,
    )
}


def onnxruntime_answers(case: OnnxCase) -> dict[str, Any]:
    """onnxruntime's own answers on the case's rows, read straight off the session."""
    import onnxruntime as ort

    session = ort.InferenceSession(case.graph, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) == 1:
        feed = {inputs[0].name: case.rows.to_numpy(dtype=np.float32)}
    else:
        feed = {
            i.name: case.rows[[i.name]].to_numpy(
                dtype=np.float32 if i.type == "tensor(float)" else object
            )
            for i in inputs
        }
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True)
    )
    if "probabilities" in outputs and "label" not in outputs:  # the Softmax graph
        probabilities = np.asarray(outputs["probabilities"])
        return {
            "predictions": probabilities.argmax(axis=1).tolist(),
            "probabilities": probabilities.tolist(),
            "classes": [0, 1, 2],
        }
    if "logits" in outputs:
        return {"predictions": np.asarray(outputs["logits"]).tolist()}
    if "variable" in outputs:
        return {"predictions": np.asarray(outputs["variable"]).ravel().tolist()}
    label = next(k for k in outputs if "label" in k)
    proba = outputs[next(k for k in outputs if "probabilit" in k)]
    classes = case.source.classes_.tolist()
    if isinstance(proba, list):  # ZipMap
        proba = [[row[c] for c in classes] for row in proba]
    return {
        "predictions": np.asarray(outputs[label]).tolist(),
        "probabilities": np.asarray(proba, dtype=np.float64).tolist(),
        "classes": classes,
    }


@pytest.fixture(scope="module", params=list(BUILDERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    case = BUILDERS[request.param]()
    folder = tmp_path_factory.mktemp(case.name)
    path = folder / f"{case.name}.onnx"
    path.write_bytes(case.graph)
    with running_server([str(path)], cwd=folder) as server:
        yield Served(case, server.url, onnxruntime_answers(case))


class TestContract(FormatContract):
    """tests/contracts.py's contract, on this module's ONNX cases."""


@pytest.mark.parametrize("name", ["numeric_pipeline", "forest_regressor", "text_column_pipeline"])
def test_onnxruntime_answers_as_the_sklearn_model_within_float32(name: str) -> None:
    case = BUILDERS[name]()
    want = onnxruntime_answers(case)
    model = case.source
    rows = case.rows if name == "text_column_pipeline" else case.rows.to_numpy()
    predictions = np.asarray(model.predict(rows)).tolist()
    if name == "forest_regressor":
        assert predictions == pytest.approx(want["predictions"], abs=SKLEARN_TOLERANCE)
        return
    assert predictions == want["predictions"]
    probabilities = model.predict_proba(rows)
    assert np.abs(probabilities - np.asarray(want["probabilities"])).max() < SKLEARN_TOLERANCE


def _model(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{url}/model", timeout=10).json()
    return answer


def test_what_the_graph_says_is_what_model_shows(served: Served) -> None:
    """Column names and kinds, classes and outputs come from the graph, and /model says that
    onnxruntime answers."""
    model = _model(served.url)
    assert model["runtime"].startswith("onnxruntime ")
    name = served.case.name
    if name == "onnx_raw_logits":
        assert model["has_proba"] is False and model["n_outputs"] == 3 and model["classes"] == []
    if name == "onnx_softmax_classifier":
        assert model["task"] == "classification" and model["classes"] == [0, 1, 2]
    if name == "onnx_forest_regressor":
        assert model["task"] == "regression"
    if name == "onnx_text_column_pipeline":
        region = next(f for f in model["features"] if f["name"] == "region")
        assert region["kind"] == "category"
        assert region["categories"] == ["east", "north", "south", "west"]
        # a string tensor cannot hold a missing value: refused up front, saying why
        assert region["missing"] == "refused" and "string tensor" in region["missing_reason"]
        spend = next(f for f in model["features"] if f["name"] == "spend")
        assert spend["missing"] == "accepted"  # NaN goes to the graph, which imputes it
        answer = requests.post(
            f"{served.url}/predict", json=[{"spend": 1.0, "region": None}], timeout=10
        )
        assert answer.status_code == 400 and "region" in answer.text
    if name == "onnx_numeric_pipeline":
        assert [f["name"] for f in model["features"]] == ["age", "income", "debt", "visits"]


def test_a_damaged_onnx_file_is_refused_saying_so(tmp_path: Path) -> None:
    from winserve.errors import ModelLoadError
    from winserve.host import loading

    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a graph at all")
    with pytest.raises(ModelLoadError, match=r"cannot load broken\.onnx as an ONNX graph"):
        loading.load_file(path, strict_versions=False, mmap=True)


def test_an_integer_input_takes_whole_numbers_and_no_missing_value(tmp_path: Path) -> None:
    """A graph taking int64 (an embedding index, a count): whole numbers go in as int64, a
    missing value or a fraction is refused with the input's name, before the graph runs."""
    from onnx import TensorProto, helper

    from winserve.host.model_host import ModelHost
    from winserve.model_info import ModelSpec

    graph = helper.make_graph(
        [helper.make_node("Cast", ["count"], ["value"], to=TensorProto.FLOAT)],
        "counts",
        [helper.make_tensor_value_info("count", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "counts.onnx"
    path.write_bytes(model.SerializeToString())
    host = ModelHost()
    loaded = host.load(ModelSpec(str(path)))
    assert loaded["ok"], loaded
    (feature,) = loaded["info"]["features"]
    assert feature["missing"] == "refused" and "integer tensor" in feature["missing_reason"]
    answer = host.predict({"rows": [[3], [4]]}, False)
    assert answer["ok"] and answer["predictions"] == [3.0, 4.0], answer
    fraction = host.predict({"rows": [[1.5]]}, False)
    assert not fraction["ok"] and fraction["error"]["input_error"]
    assert "whole numbers" in fraction["error"]["message"]

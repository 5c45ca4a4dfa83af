"""The model host in this process: loading, describing, predicting, and its failure records."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from tests.conftest import diabetes_with_text, iris_frame
from winserve.host import ModelHost
from winserve.model_info import ModelInfo, ModelSpec


def _load(spec: ModelSpec) -> tuple[ModelHost, dict]:
    host = ModelHost()
    record = host.load(spec)
    return host, record


def test_demo_is_labelled_and_cached(isolated_cache: Path) -> None:
    _host, record = _load(ModelSpec())
    info = ModelInfo.from_dict(record["info"])
    assert info.demo and info.name == "iris-demo" and "DEMO" in info.extra["description"]
    assert info.classes == ("setosa", "versicolor", "virginica")
    assert info.sample_prediction in info.classes and not info.sample_error
    assert list(isolated_cache.glob("winserve/iris-demo-*.joblib"))


def test_forest_description_and_predictions_match_in_process(iris_forest: Path) -> None:
    host, record = _load(ModelSpec(str(iris_forest)))
    info = ModelInfo.from_dict(record["info"])
    x, _ = iris_frame()
    model = joblib.load(iris_forest)
    assert info.feature_names == list(x.columns) and info.all_numeric
    assert info.task == "classification" and info.has_proba
    assert info.sha256 and info.file_size == iris_forest.stat().st_size and info.mmap
    assert info.extra["numeric_rows_as"] == "array"  # answers the same without a DataFrame
    result = host.predict({"matrix": x.to_numpy()}, True)
    assert result["ok"]
    assert result["predictions"] == model.predict(x).tolist()
    assert np.allclose(result["probabilities"], model.predict_proba(x))


def test_the_feature_names_warning_is_filtered_once_not_on_every_call(iris_forest: Path) -> None:
    """An array-fed model makes scikit-learn warn about feature names on each call: ignored by
    one filter put in at load, not by a filter change per call (issue 14), and only that one."""
    host, record = _load(ModelSpec(str(iris_forest)))
    assert record["info"]["extra"]["numeric_rows_as"] == "array"
    rows = {"matrix": iris_frame()[0].to_numpy()[:1]}
    assert host.predict(rows, True)["ok"]  # pytest turns warnings into errors: none came
    filters, listed = list(warnings.filters), warnings.filters
    for _ in range(3):
        assert host.predict(rows, True)["ok"]
    assert warnings.filters is listed and warnings.filters == filters
    with warnings.catch_warnings():  # a new filter list, as pytest makes for each test
        warnings.simplefilter("error")
        assert host.predict(rows, True)["ok"]
        with pytest.raises(UserWarning, match="something else"):
            warnings.warn("something else", UserWarning, stacklevel=1)


def test_pipeline_with_string_columns(text_pipeline: Path) -> None:
    host, record = _load(ModelSpec(str(text_pipeline)))
    info = ModelInfo.from_dict(record["info"])
    kinds = {f.name: f for f in info.features}
    assert kinds["sex"].kind == "category" and kinds["sex"].categories == ("female", "male")
    assert kinds["sex"].strict_categories
    assert kinds["bmi_band"].categories == ("high", "low", "mid")
    assert kinds["age"].kind == "number" and info.task == "regression" and not info.has_proba
    x, _ = diabetes_with_text()
    columns = {c: x[c].tolist() for c in x.columns}
    result = host.predict({"columns": columns}, False)
    assert np.allclose(result["predictions"], joblib.load(text_pipeline).predict(x))


def test_array_model_has_positional_columns(array_regressor: Path) -> None:
    host, record = _load(ModelSpec(str(array_regressor)))
    info = ModelInfo.from_dict(record["info"])
    assert not info.feature_names_known and info.feature_names[:2] == ["x0", "x1"]
    assert not info.mmap  # compressed files cannot be memory-mapped
    assert host.predict({"matrix": np.zeros((2, 10))}, False)["ok"]


def _restamp(source: Path, target: Path, version: str) -> None:
    """The same model, as if saved by another scikit-learn (the version is in the pickle)."""
    import sklearn

    data = source.read_bytes()
    assert sklearn.__version__.encode() in data and len(version) == len(sklearn.__version__)
    target.write_bytes(data.replace(sklearn.__version__.encode(), version.encode()))


def test_version_skew_warns_naming_both_versions(iris_forest: Path, tmp_path: Path) -> None:
    import sklearn

    old = tmp_path / "old.joblib"
    fake = "".join("0" if c.isdigit() else c for c in sklearn.__version__)  # 1.9.1 → 0.0.0
    _restamp(iris_forest, old, fake)
    _, record = _load(ModelSpec(str(old)))
    assert record["ok"], record
    info = ModelInfo.from_dict(record["info"])
    assert info.saved_with_sklearn == fake
    assert any(info.saved_with_sklearn in w and sklearn.__version__ in w for w in info.warnings)
    _, strict = _load(ModelSpec(str(old), strict_versions=True))
    assert not strict["ok"] and "strict_versions" in strict["error"]["message"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot load"),
        (b"not a pickle at all", "cannot load"),
        (None, "has no predict() method"),
    ],
)
def test_unloadable_files_say_why(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.joblib"
    if content is None:
        joblib.dump({"just": "a dict"}, path)
    else:
        path.write_bytes(content)
    _, record = _load(ModelSpec(str(path)))
    assert not record["ok"] and message in record["error"]["message"]
    assert "Traceback" not in record["error"]["message"]


def test_missing_file_and_missing_package(tmp_path: Path) -> None:
    _, record = _load(ModelSpec(str(tmp_path / "gone.joblib")))
    assert "model file not found" in record["error"]["message"]
    path = tmp_path / "needs.joblib"
    path.write_bytes(
        b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x0cnot_a_module"
        b"\x94\x8c\x03Foo\x94\x93\x94."
    )
    _, record = _load(ModelSpec(str(path)))
    assert "needs the Python module 'not_a_module'" in record["error"]["message"]


def test_errors_come_back_as_records(tmp_path: Path) -> None:
    host, record = _load(ModelSpec(factory="tests.models:chaos"))
    assert record["ok"]
    assert record["info"]["extra"]["numeric_rows_as"] == "dataframe"  # it reads frame["a"]
    bad = host.predict({"matrix": np.array([[-1.0, 0.0]])}, False)
    assert not bad["ok"] and bad["error"]["input_error"] and bad["error"]["type"] == "ValueError"
    bug = host.predict({"matrix": np.array([[13.0, 0.0]])}, False)
    assert (
        not bug["ok"]
        and not bug["error"]["input_error"]
        and "Traceback" in bug["error"]["traceback"]
    )
    _, failed = _load(ModelSpec(factory="tests.models:broken"))
    assert "this factory always fails" in failed["error"]["message"]


@pytest.mark.parametrize("form", ["matrix", "columns"])
def test_the_rows_a_batch_fails_on_are_found_in_the_same_call(form: str) -> None:
    """One way of isolating bad rows (issue 14): the host halves the failing parts, answers
    the good rows and gives each bad row the error it gets alone."""
    host, _ = _load(ModelSpec(factory="tests.models:chaos"))
    a = [20.0 + i for i in range(20)]  # clear of the values that hang, crash or segfault
    a[5], a[17] = -1.0, 13.0  # rejected input; a bug of the model
    b = [1.0] * 20
    payload = {
        "matrix": {"matrix": np.array([a, b]).T},
        "columns": {"columns": {"a": a, "b": b}},
    }[form]
    record = host.predict(payload, False)
    assert not record["ok"] and record["error"]["message"] == "a must not be -1"  # the call's
    isolated = record["isolated"]
    assert isolated["predictions"] == [None if i in (5, 17) else 21.0 + i for i in range(20)]
    errors = dict(isolated["errors"])
    assert sorted(errors) == [5, 17]
    alone_bad = host.predict({"matrix": np.array([[-1.0, 1.0]])}, False)["error"]
    alone_bug = host.predict({"matrix": np.array([[13.0, 1.0]])}, False)["error"]
    assert {k: errors[5][k] for k in ("type", "message", "input_error")} == {
        k: alone_bad[k] for k in ("type", "message", "input_error")
    }
    assert errors[5]["traceback"] == ""  # an input error's is never logged: not carried
    assert errors[17]["message"] == alone_bug["message"] == "unlucky number"
    assert not errors[17]["input_error"] and "Traceback" in errors[17]["traceback"]

    one = host.predict({"matrix": np.array([[-1.0, 1.0]])}, False)
    assert not one["ok"] and "isolated" not in one  # one row: its error is the row's

    plain, _ = _load(ModelSpec(factory="tests.models:plain"))  # rows as they are sent
    mixed = plain.predict({"rows": [[1, 2], ["x", 1], [3, 4]]}, False)
    assert mixed["isolated"]["predictions"] == [3.0, None, 7.0]
    assert [row for row, _ in mixed["isolated"]["errors"]] == [1]


def test_a_row_asked_alone_is_not_called_position_0() -> None:
    """pandas names a bad value's place in the rows it got ("…, at position 0"); a row the
    host asked alone is named by its place in the request instead, so the message drops it."""
    from winserve.host import isolate

    values = ["2021-05-03", "x", "2021-05-04", "y"]

    def answer(part: list[str], proba: bool, scores: bool) -> Any:
        for position, value in enumerate(part):
            if value in ("x", "y"):
                raise ValueError(
                    f"time data {value!r} doesn't match format, at position {position}"
                )
        return {"predictions": [1.0] * len(part)}

    def part(lo: int, hi: int) -> list[str]:
        return values[lo:hi]

    first = {"type": "ValueError", "message": "time data 'x' doesn't match format, at position 1"}
    found = isolate.isolate(4, part, answer, False, False, first)  # type: ignore[arg-type]
    assert found["predictions"] == [1.0, None, 1.0, None]
    messages = {row: error["message"] for row, error in found["errors"]}
    assert messages == {
        1: "time data 'x' doesn't match format",
        3: "time data 'y' doesn't match format",
    }


def test_answers_that_are_not_numbers_are_null_not_invalid_json() -> None:
    from winserve.host.inputs import plain

    assert plain(np.array([1.5, np.nan, np.inf, -np.inf])) == [1.5, None, None, None]
    assert plain(np.array([[0.25, np.nan]])) == [[0.25, None]]


def test_an_object_array_of_labels_is_answered_as_builtins() -> None:
    """A classifier's string labels come as an object array: kept as they are when every item
    is a builtin already (one check, not a call per row), converted item by item otherwise."""
    from winserve.host.inputs import plain

    labels = np.array(["setosa", "versicolor"] * 3, dtype=object)
    assert plain(labels) == ["setosa", "versicolor"] * 3
    mixed = plain(np.array([np.str_("a"), np.float64(0.5), np.int64(2), None, "b"], dtype=object))
    assert mixed == ["a", 0.5, 2, None, "b"]
    assert [type(v) for v in mixed] == [str, float, int, type(None), str]
    assert plain(np.array([[np.str_("x")], ["y"]], dtype=object)) == [["x"], ["y"]]


def test_a_model_fitted_on_a_number_array_gets_floats_in_its_sample_too(tmp_path: Path) -> None:
    """A FunctionTransformer(np.log1p) fails on an object array: the load-time sample must be
    built as real requests are, as floats."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = np.abs(np.random.default_rng(0).normal(size=(50, 2)))
    model = make_pipeline(FunctionTransformer(np.log1p), LinearRegression()).fit(x, x.sum(1))
    path = tmp_path / "log.joblib"
    joblib.dump(model, path)
    record = ModelHost().load(ModelSpec(str(path)))
    assert record["ok"], record


def test_a_matrix_with_nan_keeps_the_models_own_check(tmp_path: Path) -> None:
    """A finite matrix skips scikit-learn's finiteness check (assume_finite); one with NaN or
    an infinity does not: the model's own error, as a row error, and the same answers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from winserve.backends.replica import wire_payload

    x, y = iris_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    path = tmp_path / "lr.joblib"
    joblib.dump(model, path)
    host, record = _load(ModelSpec(str(path)))
    assert record["ok"]
    rows = x.to_numpy()[:3].copy()
    answer = host.predict(wire_payload({"matrix": rows}), True)
    assert answer["ok"] and answer["predictions"] == model.predict(x.iloc[:3]).tolist()
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(x.iloc[:3]))
    for bad in (np.nan, np.inf):
        rows[1, 2] = bad
        failed = host.predict(wire_payload({"matrix": rows}), False)
        assert not failed["ok"] and failed["error"]["input_error"]
        assert "Input X contains" in failed["error"]["message"]
        assert [row for row, _ in failed["isolated"]["errors"]] == [1]


def test_answers_come_back_as_builtins_whatever_their_numpy_type() -> None:
    """``plain`` (the host's last step, issue 23): text labels, numbers and object arrays come
    back as Python's own types (pickled to the web process, written as JSON there)."""
    from winserve.host.inputs import plain

    labels = plain(np.array(["setosa", "virginica"]))
    assert labels == ["setosa", "virginica"] and all(type(v) is str for v in labels)
    assert type(plain(np.str_("setosa"))) is str
    mixed = plain(np.array([np.int64(1), "a", np.float32(0.5), None], dtype=object))
    assert mixed == [1, "a", 0.5, None] and [type(v) for v in mixed[:3]] == [int, str, float]
    assert plain(np.array([[1.5, np.inf]])) == [[1.5, None]]
    assert plain(np.array([1, 2], dtype=np.int32)) == [1, 2]


def test_a_model_whose_probabilities_write_to_its_arrays_is_not_memory_mapped(
    tmp_path: Path,
) -> None:
    """libsvm's predict_proba takes the model's arrays as writable buffers: memory-mapped from
    an uncompressed joblib file (read-only), SVC(probability=True) answered every row with
    "buffer source array is read-only" (a tester's). Its labels answer, so the load checks its
    probabilities too, and loads it again into private memory."""

    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    x, y = load_iris(return_X_y=True, as_frame=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.9 deprecates probability
        model = SVC(probability=True, random_state=0).fit(x, y)
    path = tmp_path / "svc.joblib"
    joblib.dump(model, path)  # uncompressed: memory-mapped where the model allows it
    host, record = _load(ModelSpec(str(path)))
    assert record["ok"] and not record["info"]["mmap"], record
    rows = x.to_numpy()[:5]
    answer = host.predict({"matrix": rows}, True)
    assert answer["ok"], answer
    assert answer["probabilities"] == model.predict_proba(x.iloc[:5]).tolist()

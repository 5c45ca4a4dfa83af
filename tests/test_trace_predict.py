"""bench/trace_predict.py (issue 23): its counting, and the request path it measures.

The real trace holds the request path to issue 23's promise: a single-row prediction, native
or MLflow, checks finiteness once and copies its matrix at most once, across both processes;
and its path keeps the folds made for a newcomer to follow it: the model host's own path is
``inputs`` (its ``Predictor``), the web process's passes neither ``web/uploads`` nor
``web/responses`` for a JSON body.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from types import ModuleType

import pytest

from tests.helpers import ROOT


def trace_module() -> ModuleType:
    """bench/trace_predict.py as a module (bench/ is scripts, not a package)."""
    path = ROOT / "bench" / "trace_predict.py"
    spec = importlib.util.spec_from_file_location("trace_predict", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["trace_predict"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(30)
def test_calls_are_counted_by_kind_and_only_from_winserve_code() -> None:
    trace = trace_module()
    ours = trace.PACKAGE + "validate.py"
    theirs = "/usr/lib/python3/dist-packages/numpy/core/numeric.py"
    events = [
        ["py", ours, "prepare", theirs],
        ["py", ours, "_bounds", ours],
        ["py", trace.PACKAGE + "service.py", "Service.predict", ours],
        ["c", "_bounds", "builtins.sum", ours],
        ["c", "_bounds", "numpy.array", ours],
        ["c", "helper", "numpy.array", theirs],  # NumPy's own: not counted
        ["c", "call", "pickle.dumps", theirs],  # the boundary: counted from anywhere
        ["c", "_copy", "ndarray.copy", ours],
        ["py", "/x/json/decoder.py", "JSONDecoder.decode", "/x/flask/json.py"],
    ]
    found = trace.count(events)
    assert set(found["functions"]) == {
        "validate.py:prepare",
        "validate.py:_bounds",
        "service.py:Service.predict",
    }
    assert found["modules"] == {"validate.py", "service.py"}
    assert found["changes"] == 4  # array, dumps, copy, decode
    assert found["copies"] == 1
    assert found["finite"] == 1 and found["checks"] == ["validate.py:_bounds"]


@pytest.mark.timeout(30)
def test_the_own_path_and_the_hooks_every_route_runs_are_split_by_module() -> None:
    trace = trace_module()
    found = {
        "modules": {"web/api.py", "web/gate.py", "predlog/writer.py", "rows.py", "web/held.py"},
        "functions": {
            "web/api.py:predict": 1,
            "rows.py:row_count": 2,
            "web/gate.py:Gate.verdict": 1,
            "web/held.py:held": 1,
            "predlog/writer.py:PredictionLog.put": 1,
        },
    }
    parts = trace.split(found)
    assert parts["own"] == ["rows.py", "web/api.py"]
    assert parts["hooks"] == ["predlog/writer.py", "web/gate.py", "web/held.py"]
    assert (parts["own_functions"], parts["hook_functions"]) == (2, 3)
    table = trace.path_table({"POST /predict": {"web": {**found}}})
    assert "| POST /predict | web | 2 | 2 | 3 | 3 |" in table


@pytest.mark.spawn
@pytest.mark.server
@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="the trace arms with SIGUSR1")
@pytest.mark.timeout(300)
def test_one_prediction_checks_finiteness_once_and_copies_its_matrix_at_most_once() -> None:
    trace = trace_module()
    results = trace.trace()
    assert set(results) == {
        "POST /predict (1 record)",
        "POST /invocations (dataframe_split)",
        "POST /models/<name>/predict (1 record)",
    }
    for case, by_process in results.items():
        assert set(by_process) == {"web", "model host"}, case
        checks = [c for found in by_process.values() for c in found["checks"]]
        assert len(checks) == 1, (case, checks)
        assert sum(found["copies"] for found in by_process.values()) <= 1, case
        assert by_process["web"]["functions"] and by_process["model host"]["functions"], case
        # issue 23's folds: the host's path is one module, and the model's own arithmetic
        # where winserve computes it (the bench's logistic regression: host/linear, issue
        # 29, in place of scikit-learn's methods); the body's read and the answer written in
        # one (web/bodies)
        host = trace.split(by_process["model host"])
        assert host["own"] == ["host/inputs.py", "host/linear.py"], (case, host)
        web = trace.split(by_process["web"])
        assert "web/bodies.py" in web["own"], (case, web)
        assert not {"web/uploads.py", "web/responses.py"} & set(web["own"]), (case, web)
        # a request is a typed record made without winserve code, and the model's
        # description answers from fields and cached properties (issue 23): neither module
        # runs anything per request
        assert not {"rows.py", "model_info.py"} & set(web["own"]), (case, web)
        # one registry call per request: the version taken (and given back at the end, which
        # may fall after the traced window)
        registry = [f for f in by_process["web"]["functions"] if f.startswith("models/")]
        acquire, release = (
            "models/registry.py:Registry.acquire",
            "models/registry.py:Registry.release",
        )
        assert acquire in registry and set(registry) <= {acquire, release}, (case, registry)

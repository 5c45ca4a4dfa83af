"""Every model kind of the fidelity zoo (``tests/zoo.py``) explained with a reference file
beside it (issue 25), through the service and the model host in this process (no processes):
the contributions add up to the number explained (1e-9, exact enumeration), that number is the
model's own (a classifier's probability of its predicted class, a regressor's value), and a
model whose prediction is not one number is refused with a 409 naming why, never a 500."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests import zoo
from winserve.backends.local import LocalBackend
from winserve.errors import WinserveError
from winserve.protocols import native
from winserve.server import model_spec
from winserve.service import Service
from winserve.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # 19 models trained and loaded

EXACT = 1e-9
# no one number to share out: several outputs, cluster numbers, outlier labels
REFUSED = {"multi_output_regressor", "clusterer", "outlier_detector"}


@pytest.fixture(params=list(zoo.BUILDERS))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    case = zoo.BUILDERS[request.param]()
    args = zoo.save(case, tmp_path)
    settings = (
        Settings(factory=args[1]) if args[0] == "--factory" else Settings(model=Path(args[0]))
    )
    if args[0] == "--factory":
        pytest.skip("a factory has no model file to put a reference beside")
    first = LocalBackend(model_spec(settings))  # loaded once to learn its column names
    first.start()
    names = [f.name for f in first.wait_ready(120).features]
    first.close()
    reference = (
        pd.DataFrame({names[0]: list(case.rows)})
        if case.text
        else case.rows.set_axis(names, axis=1)
        if not case.named
        else case.rows
    )
    reference.to_csv(Path(args[0]).with_name(f"{case.name}.reference.csv"), index=False)
    backend = LocalBackend(model_spec(settings))  # loaded again: it finds its reference now
    backend.start()
    backend.wait_ready(120)
    try:
        yield case, Service(backend, max_rows=100)
    finally:
        backend.close()


def test_each_model_kind_is_explained_or_refused_clearly(served: Any) -> None:
    case, service = served
    info = service.info()
    assert info.extra["reference"]["rows"] == case.n_rows, info.extra["reference"]
    row = zoo.records(case)[:1]
    try:
        found = service.explain(native.decode(row, False), info)[0]
    except WinserveError as exc:
        # a multi-output model predicts a list per row, a text label without probabilities
        assert exc.status == 409, exc.message
        assert "explanations need a number" in exc.message
        assert case.name in REFUSED, exc.message
        return
    assert case.name not in REFUSED
    total = found["baseline"] + sum(found["contributions"].values())
    assert math.isclose(total, found["output"], abs_tol=EXACT) or found["method"] != "exact"
    assert list(found["contributions"]) == info.feature_names
    expected = zoo.expected(dataclasses_replace_rows(case))
    if found["explained"] == "probability":
        classes = expected["classes"]
        index = classes.index(expected["predictions"][0])
        assert found["output"] == pytest.approx(expected["probabilities"][0][index], abs=EXACT)
    else:
        assert found["output"] == pytest.approx(float(expected["predictions"][0]), abs=EXACT)


def dataclasses_replace_rows(case: zoo.Case) -> zoo.Case:
    import dataclasses

    rows = case.rows[:1] if case.text else case.rows.iloc[:1]
    return dataclasses.replace(case, rows=rows)

"""A model that needs its author's own code: a function from the training notebook, a module of
their own. Models are trained here in a separate Python, as a data scientist's script would,
and loaded by ``winserve check`` and a real server, in spawned model hosts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import running_server, winserve_check

pytestmark = [pytest.mark.spawn]

DOUBLE = "def double(x):\n    return x * 2\n"
TRAIN = """
import joblib
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
{define}
X = np.arange(20, dtype=float).reshape(10, 2)
model = make_pipeline(FunctionTransformer(double), LinearRegression()).fit(X, X.sum(axis=1) * 2)
joblib.dump(model, {target!r})
"""


def _train(target: Path, define: str, cwd: Path) -> None:
    """Train and save as a script run with ``python -c`` does: its own definitions live in
    ``__main__``, its modules are found in ``cwd``."""
    script = TRAIN.format(define=define, target=str(target))
    subprocess.run([sys.executable, "-c", script], cwd=cwd, check=True, timeout=120)


@pytest.fixture(scope="module")
def notebook_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notebook")
    model = folder / "churn model.joblib"
    _train(model, DOUBLE, folder)
    return model


def test_a_notebook_function_is_named_with_what_to_do(notebook_model: Path) -> None:
    result = winserve_check(notebook_model)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        "FAILED: the model uses 'double', which was defined in the notebook or script that "
        "trained it; put that definition (with the imports it needs) in churn model_code.py "
        "next to churn model.joblib: winserve runs that file before loading the model"
    )


def test_the_code_file_next_to_the_model_supplies_it(notebook_model: Path) -> None:
    code = notebook_model.with_name("churn model_code.py")
    training = 'if __name__ == "__main__":\n    raise SystemExit("the training part ran")\n'
    code.write_text(f"import numpy as np\n\n{DOUBLE}\n{training}", encoding="utf-8")
    try:
        checked = winserve_check(notebook_model).stdout
        assert checked.splitlines()[-1].startswith("OK: the model loads")
        assert "  code      churn model_code.py (run before loading the model)" in checked
        with running_server([str(notebook_model)], cwd=notebook_model.parent) as server:
            answer = requests.post(
                f"{server.url}/predict", json=[{"x0": 1, "x1": 2}, {"x0": 3, "x1": 4}], timeout=30
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == pytest.approx([6.0, 14.0])
    finally:
        code.unlink()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "import numpy as np\n\nscale = factor * 2\n",
            "FAILED: churn model_code.py, which runs before the model loads, failed (line 3): "
            "NameError: name 'factor' is not defined",
        ),
        (
            "import numpy as np\n",
            "FAILED: the model uses 'double', which churn model_code.py next to "
            "churn model.joblib does not define",
        ),
    ],
)
def test_a_code_file_that_fails_or_falls_short(
    notebook_model: Path, code: str, message: str
) -> None:
    code_file = notebook_model.with_name("churn model_code.py")
    code_file.write_text(code, encoding="utf-8")
    try:
        result = winserve_check(notebook_model)
    finally:
        code_file.unlink()
    assert result.returncode == 1 and result.stdout.splitlines()[-1] == message
    assert "Traceback" not in result.stdout + result.stderr


def test_a_module_of_the_authors_own_is_found_next_to_the_model(tmp_path: Path) -> None:
    training = tmp_path / "training"
    training.mkdir()
    features = DOUBLE
    (training / "features.py").write_text(features, encoding="utf-8")
    served = tmp_path / "served"
    served.mkdir()
    model = served / "model.joblib"
    _train(model, "from features import double", training)
    result = winserve_check(model)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        "FAILED: the model needs the Python module 'features': it is not installed here, "
        "and there is no features.py next to model.joblib"
    )
    (served / "features.py").write_text(features, encoding="utf-8")
    assert winserve_check(model).stdout.splitlines()[-1].startswith("OK: the model loads")

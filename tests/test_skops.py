""".skops files (issue 16): scikit-learn models saved with skops are served as from joblib,
through every protocol and the page (tests/contracts.py's contract, subclassed on skops
files); a type winserve does not trust is refused before any of its code runs, with a message
naming it and the setting ``trust``, and loads once the operator trusts it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests import zoo
from tests.contracts import FormatContract, Served
from tests.helpers import running_server, server_env

# skops is imported by the tests that use it, not to collect this module: the fast layer
# collects it too, and importing skops.io cost it 0.5 s of CPU (issue 23)
pytestmark = [
    pytest.mark.spawn,
    pytest.mark.server,
    pytest.mark.skipif(find_spec("skops") is None, reason="skops is not installed"),
]


def sio() -> Any:
    """``skops.io``."""
    import skops.io

    return skops.io


# scikit-learn models skops reports types for beyond its own defaults (Tree, TreePredictor,
# numpy.dtype), and the text case: served as from joblib, every protocol and the page
SKOPS_CASES = ["imputer_pipeline", "array_with_nan", "text_pipeline", "bool_pipeline"]
MARKER_TYPE = f"{__name__}.MarkerModel"


class MarkerModel:
    """A model of the test's own: restoring it (skops' ObjectNode calls ``__setstate__``)
    writes a marker file, so a test can tell whether any of its code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.feature_names_in_ = ["a", "b"]
        self.n_features_in_ = 2

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("restored", encoding="utf-8")
        self.__dict__.update(state)

    def predict(self, rows: Any) -> Any:
        return np.asarray(rows, dtype=float).sum(axis=1)


@pytest.fixture(scope="module", params=SKOPS_CASES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    case = zoo.BUILDERS[request.param]()
    folder = tmp_path_factory.mktemp(case.name)
    path = folder / f"{case.name}.skops"
    sio().dump(case.model, path)
    with running_server([str(path)], cwd=folder) as server:
        yield Served(case, server.url, zoo.expected(case))


class TestContract(FormatContract):
    """tests/contracts.py's contract, on this module's skops files."""


def _marker_model(folder: Path) -> tuple[Path, Path]:
    marker = folder / "restored.txt"
    path = folder / "marker.skops"
    sio().dump(MarkerModel(str(marker)), path)
    marker.unlink(missing_ok=True)  # dump() does not restore, but be sure
    return path, marker


def _check(model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "winserve", "check", str(model), *args],
        cwd=model.parent,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_untrusted_type_is_refused_before_any_of_its_code_runs(tmp_path: Path) -> None:
    path, marker = _marker_model(tmp_path)
    result = _check(path)
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert MARKER_TYPE in said and "trust" in said, said
    assert "--trust" in said and "winserve.toml" in said, said
    assert not marker.exists(), "the model's code ran although its type was refused"


def test_a_trusted_type_loads_from_winserve_toml_and_is_served(tmp_path: Path) -> None:
    path, marker = _marker_model(tmp_path)
    (tmp_path / "winserve.toml").write_text(f'trust = ["{MARKER_TYPE}"]\n', encoding="utf-8")
    with running_server([str(path)], cwd=tmp_path) as server:
        answer = requests.post(
            f"{server.url}/predict", json=[{"a": 1.5, "b": 2}, {"a": 0, "b": -1}], timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [3.5, -1.0]
        model = requests.get(f"{server.url}/model", timeout=10).json()
        assert model["name"] == "marker" and model["sha256"]
    assert marker.read_text(encoding="utf-8") == "restored"


def test_trust_on_the_command_line_may_be_repeated(tmp_path: Path) -> None:
    path, marker = _marker_model(tmp_path)
    result = _check(path, "--trust", "numpy.load", "--trust", MARKER_TYPE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker.exists()


def test_a_numpy_function_is_not_trusted_as_numpy_classes_are(tmp_path: Path) -> None:
    """Functions are called with the requests' data (FunctionTransformer), and NumPy has some
    that read files or run code: only classes that hold a model's data are trusted."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "loader.skops"
    sio().dump(make_pipeline(FunctionTransformer(np.load), LinearRegression()), path)
    result = _check(path)
    assert result.returncode == 1
    assert "numpy.load" in result.stdout + result.stderr


def test_the_trust_setting_in_every_source(tmp_path: Path) -> None:
    from winserve import cli, settings
    from winserve.errors import SettingsError

    parsed = cli.parse(["--trust", "a.B", "--trust", "c.d.E,f.G"])
    assert settings.load(parsed, env={}, cwd=tmp_path).trust == ("a.B", "c.d.E", "f.G")
    from_env = settings.load({}, env={"WINSERVE_TRUST": "a.B, c.D"}, cwd=tmp_path)
    assert from_env.trust == ("a.B", "c.D")
    (tmp_path / "winserve.toml").write_text('trust = ["x.Y", "z.W"]\n', encoding="utf-8")
    assert settings.load({}, env={}, cwd=tmp_path).trust == ("x.Y", "z.W")
    with pytest.raises(SettingsError, match="trust"):
        settings.load({"trust": ["not a type"]}, env={}, cwd=tmp_path)


def test_a_file_that_is_not_skops_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    path.write_bytes(json.dumps({"not": "a zip"}).encode())
    result = _check(path)
    assert result.returncode == 1
    assert "broken.skops" in result.stdout + result.stderr
    assert "not a skops file" in result.stdout + result.stderr

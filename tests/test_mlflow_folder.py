"""MLflow model folders (issue 16): served without importing MLflow, answering as MLflow does.

The slow tests build the folders with MLflow itself (``mlflow.sklearn.save_model``, with a
signature and an input example, as cloudpickle and as skops), in a virtual environment of its
own with the same scikit-learn, pandas and NumPy as winserve's, and compare winserve's
``/invocations`` answers with ``mlflow models serve --env-manager local`` on the same folder,
and with the model's own predictions in that environment. The fast ones write a folder by hand
as MLflow lays it out (a pickle, MLmodel written by PyYAML, input_example.json).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from tests import zoo
from tests.conftest import PIP_CACHE
from tests.contracts import FormatContract, Served
from tests.helpers import free_port, running_server, server_env, winserve_check

yaml = pytest.importorskip("yaml")

pytestmark = [pytest.mark.spawn, pytest.mark.server]
TOLERANCE = 1e-9
FORMATS = ("cloudpickle", "skops")
SERVE_OPTIONS = ("--env-manager", "local", "-h", "127.0.0.1")  # no conda, no new venv

BUILD = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

out = Path(sys.argv[1])
words = ["great", "bad", "slow", "fast", "cheap", "broken", "fine", "late"]
rng = np.random.default_rng(3)

def frame(n):
    return pd.DataFrame({
        "amount": rng.normal(50, 20, n).round(2),
        "visits": rng.integers(0, 10, n),
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "review": [" ".join(rng.choice(words, 3)) for _ in range(n)],
    })

train = frame(300)
y = np.where((train["amount"] > 50) ^ train["review"].str.contains("bad"), "buys", "leaves")
model = make_pipeline(
    ColumnTransformer([
        ("num", StandardScaler(), ["amount", "visits"]),
        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ("text", TfidfVectorizer(), "review"),
    ]),
    LogisticRegression(max_iter=500),
).fit(train, y)
signature = infer_signature(train, model.predict(train))
for fmt in sys.argv[2:]:
    mlflow.sklearn.save_model(
        model, out / f"reviews {fmt}", serialization_format=fmt,
        signature=signature, input_example=train.head(2),
        # not inferred (a subprocess that loads the model: 40 s → 12 s for both folders);
        # the server runs with --env-manager local, in this environment
        pip_requirements=[],
    )
rows = frame(25)
expected = json.loads(rows.to_json(orient="split", index=False))
expected["predictions"] = model.predict(rows).tolist()
expected["probabilities"] = model.predict_proba(rows).tolist()
expected["example"] = json.loads(train.head(1).to_json(orient="records"))[0]
(out / "expected.json").write_text(json.dumps(expected))
"""


def _versions() -> list[str]:
    """The model's libraries at winserve's versions, so both sides load the same model."""
    import cloudpickle
    import scipy
    import sklearn
    import skops

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"scipy=={scipy.__version__}",
        f"skops=={skops.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]


@pytest.fixture(scope="session")
def mlflow_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MLflow's own virtual environment (mlflow-skinny: saving, loading and `mlflow models
    serve`; installing it took 3 min 17 s here on a cold pip cache), with deadlines of its own:
    the tests' timeouts count only the tests (func_only below)."""
    pytest.importorskip("skops")
    folder = tmp_path_factory.mktemp("mlflow-env")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "mlflow-skinny>=3", *_versions()],
        check=True,
        timeout=1800,
        env={**os.environ, "PIP_CACHE_DIR": PIP_CACHE},  # the user's cache, not the test run's
    )
    return python


@pytest.fixture(scope="session")
def mlflow_folders(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlflow-models")
    subprocess.run(
        [str(mlflow_python), "-c", BUILD, str(out), *FORMATS],
        check=True,
        timeout=300,
        env={**_mlflow_env(mlflow_python, out), "PYTHONWARNINGS": "ignore"},
    )
    return out


def _mlflow_env(python: Path, folder: Path) -> dict[str, str]:
    """MLflow's server runs `uvicorn` from PATH; its tracking store stays in the test's
    folder, and nothing is sent anywhere."""
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(python.parent), os.environ.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": (folder / "mlruns").as_uri(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


@contextlib.contextmanager
def mlflow_serving(python: Path, folder: Path, work: Path) -> Iterator[str]:
    """`mlflow models serve` on ``folder``: it started offline in about 18 s here."""
    port = free_port()
    log = (work / f"mlflow-serve-{port}.log").open("w")
    command = [str(python), "-m", "mlflow", "models", "serve", "-m", str(folder)]
    proc = subprocess.Popen(
        [*command, *SERVE_OPTIONS, "-p", str(port)],
        env=_mlflow_env(python, work),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while True:
            assert proc.poll() is None, Path(log.name).read_text()[-3000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/ping", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < end, "mlflow models serve did not start within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.kill()
        proc.wait(30)
        log.close()


def _bodies(expected: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    split = {"columns": expected["columns"], "data": expected["data"]}
    records = [dict(zip(expected["columns"], row, strict=True)) for row in expected["data"]]
    csv = pd.DataFrame(expected["data"], columns=expected["columns"]).to_csv(index=False)
    # params without a params schema in the signature: MLflow ignores them (issue 22)
    ignored = {"dataframe_split": split, "params": {"predict_method": "predict_proba"}}
    return [
        ({"dataframe_split": split}, ""),
        ({"dataframe_records": records}, ""),
        ({}, csv),
        (ignored, ""),
    ]


def _post(url: str, body: dict[str, Any], csv: str) -> requests.Response:
    if csv:
        return requests.post(
            f"{url}/invocations", data=csv, headers={"Content-Type": "text/csv"}, timeout=60
        )
    return requests.post(f"{url}/invocations", json=body, timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(300, func_only=True)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_folder_is_answered_as_mlflow_models_serve_answers_it(
    fmt: str, mlflow_python: Path, mlflow_folders: Path, tmp_path: Path
) -> None:
    folder = mlflow_folders / f"reviews {fmt}"
    expected = json.loads((mlflow_folders / "expected.json").read_text())
    assert (
        yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"][
            "serialization_format"
        ]
        == fmt
    )
    with mlflow_serving(mlflow_python, folder, tmp_path) as mlflow_url:
        theirs = [_post(mlflow_url, body, csv) for body, csv in _bodies(expected)]
    for answer in theirs:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": expected["predictions"]}
    with running_server([str(folder)], cwd=tmp_path) as server:
        ours = [_post(server.url, body, csv) for body, csv in _bodies(expected)]
        model = requests.get(f"{server.url}/model", timeout=10).json()
        page = requests.get(f"{server.url}/", timeout=10).text
    for mine, answer in zip(ours, theirs, strict=True):
        assert mine.status_code == 200, mine.text
        assert mine.json() == answer.json()
    assert model["name"] == f"reviews {fmt}"
    kinds = {f["name"]: f["kind"] for f in model["features"]}
    assert kinds == {"amount": "number", "visits": "number", "plan": "category", "review": "string"}
    plan = next(f for f in model["features"] if f["name"] == "plan")
    assert plan["categories"] == ["basic", "plus", "pro"]
    # no card beside the folder: the input example prefills the form
    assert expected["example"]["review"] in page


# --- folders written by hand, as MLflow lays them out (no MLflow needed) ----------------
# scikit-learn models of the zoo as MLflow folders (a tensor signature for the one fitted on
# an array): served as from joblib, through every protocol and the page
FOLDER_CASES = ["imputer_pipeline", "array_with_nan", "bool_pipeline"]
TENSOR_INPUT = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 5]}}]


@pytest.fixture(scope="module", params=FOLDER_CASES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    case = zoo.BUILDERS[request.param]()
    folder = tmp_path_factory.mktemp(case.name) / case.name
    inputs = None if case.named else TENSOR_INPUT
    _write_folder(folder, case.model, case.rows, inputs)
    with running_server([str(folder)], cwd=folder.parent) as server:
        yield Served(case, server.url, zoo.expected(case))


class TestContract(FormatContract):
    """tests/contracts.py's contract, on this module's hand-written MLflow folders."""


def _pipeline() -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    frame = pd.DataFrame(
        {
            "size in square metres": [30.0, 45.5, 60.0, 80.0, 120.0, 55.0],
            "rooms": [1, 2, 2, 3, 5, 2],
            "description": [
                "small flat",
                "bright flat",
                "flat with garden",
                "house",
                "large house with garden",
                "flat near station",
            ],
        }
    )
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", "passthrough", ["size in square metres", "rooms"]),
                ("text", TfidfVectorizer(), "description"),
            ]
        ),
        Ridge(),
    ).fit(frame, [100.0, 150.0, 210.0, 260.0, 420.0, 190.0])
    return model, frame


def _write_folder(
    folder: Path,
    model: Any,
    frame: pd.DataFrame,
    inputs: list[dict[str, Any]] | None = None,
    **flavors: Any,
) -> Path:
    """``inputs``: the signature's input schema (default: a column per DataFrame column,
    typed as infer_signature types them)."""
    folder.mkdir()
    with (folder / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    types = {"float64": "double", "int64": "long", "object": "string", "str": "string"}
    types["bool"] = "boolean"
    if inputs is None:
        inputs = [{"type": types[str(frame[c].dtype)], "name": c, "required": True} for c in frame]
    mlmodel = {
        "flavors": flavors
        or {
            "python_function": {
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "pickle",
            },
        },
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
        },
        "signature": {"inputs": json.dumps(inputs), "outputs": None, "params": None},
    }
    text = yaml.safe_dump(mlmodel, default_flow_style=False)
    if len(json.dumps(inputs)) > 100:
        assert "\n    " in text.split("inputs:")[1].split("outputs")[0]  # folded, as MLflow's
    (folder / "MLmodel").write_text(text)
    (folder / "input_example.json").write_text(frame.head(2).to_json(orient="split", index=False))
    return folder


def test_a_hand_written_folder_is_served_with_its_signature_and_example(tmp_path: Path) -> None:
    model, frame = _pipeline()
    folder = _write_folder(tmp_path / "flat prices", model, frame)
    rows = json.loads(frame.to_json(orient="records"))
    with running_server([str(folder)], cwd=tmp_path) as server:
        answer = requests.post(f"{server.url}/predict", json=rows, timeout=30)
        records = requests.post(
            f"{server.url}/invocations", json={"dataframe_records": rows}, timeout=30
        )
        info = requests.get(f"{server.url}/model", timeout=10).json()
        metadata = requests.get(f"{server.url}/v2/models/flat prices", timeout=10).json()
        page = requests.get(f"{server.url}/", timeout=10).text
    want = model.predict(frame).tolist()
    assert np.allclose(answer.json()["predictions"], want, rtol=0, atol=TOLERANCE)
    assert np.allclose(records.json()["predictions"], want, rtol=0, atol=TOLERANCE)
    assert info["name"] == "flat prices" and len(info["sha256"]) == 64
    assert [(f["name"], f["kind"]) for f in info["features"]] == [
        ("size in square metres", "number"),
        ("rooms", "number"),
        ("description", "string"),
    ]
    assert [i["name"] for i in metadata["inputs"]] == list(frame.columns)
    assert "small flat" in page  # the input example's first row prefills the form


def test_the_card_beside_the_folder_wins_over_the_input_example(tmp_path: Path) -> None:
    from winserve import card

    model, frame = _pipeline()
    folder = _write_folder(tmp_path / "flats", model, frame)
    assert card.load(folder).example["description"] == "small flat"
    (tmp_path / "flats.toml").write_text('[example]\ndescription = "house"\n')
    assert card.load(folder).example == {"description": "house"}


def test_another_flavour_is_named(tmp_path: Path) -> None:
    model, frame = _pipeline()
    pyfunc = {"python_function": {"loader_module": "mlflow.pyfunc.model", "python_model": "m"}}
    folder = _write_folder(tmp_path / "custom", model, frame, None, **pyfunc)
    result = winserve_check(folder)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "python_function" in said and "mlflow.pyfunc.model" in said and "sklearn" in said
    pytorch = {"pytorch": {"model_data": "data"}, **pyfunc}
    result = winserve_check(_write_folder(tmp_path / "torch", model, frame, None, **pytorch))
    assert result.returncode == 1 and "flavour pytorch" in result.stdout + result.stderr


def test_an_empty_folder_is_refused_naming_it(tmp_path: Path) -> None:
    """Neither an MLflow folder (no MLmodel) nor a folder holding models."""
    (tmp_path / "not a model").mkdir()
    result = winserve_check(tmp_path / "not a model")
    assert result.returncode in (1, 2), result
    assert "not a model" in result.stdout + result.stderr


def test_the_folder_is_pinned_as_a_whole(tmp_path: Path) -> None:
    from winserve.model_file import sha256_of

    model, frame = _pipeline()
    folder = _write_folder(tmp_path / "flats", model, frame)
    before = sha256_of(folder)
    (folder / "code" / "__pycache__").mkdir(parents=True)
    (folder / "code" / "__pycache__" / "x.pyc").write_bytes(b"written by an import")
    assert sha256_of(folder) == before
    (folder / "input_example.json").write_text("[]")
    assert sha256_of(folder) != before
    pinned = subprocess.run(
        [sys.executable, "-m", "winserve", "check", str(folder), "--model-sha256", before],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pinned.returncode == 1 and "refused without loading it" in pinned.stdout, pinned


def test_the_code_saved_in_the_folder_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_model(code_paths=[...]) copies the training code into the folder's code/, which
    MLflow puts on the import path when it loads the model: so does winserve."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    source = tmp_path / "training"
    source.mkdir()
    code = "import numpy as np\n\n\ndef logged(x):\n    return np.log1p(x)\n"
    (source / "flat_features.py").write_text(code)
    monkeypatch.syspath_prepend(str(source))
    import flat_features  # type: ignore[import-not-found]

    frame = pd.DataFrame({"size": [30.0, 45.0, 60.0, 80.0], "rooms": [1.0, 2.0, 2.0, 3.0]})
    model = make_pipeline(FunctionTransformer(flat_features.logged), LinearRegression())
    model.fit(frame, [1.0, 2.0, 2.5, 3.5])
    flavors = {
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
        "sklearn": {"code": "code", "pickled_model": "model.pkl", "serialization_format": "pickle"},
    }
    folder = _write_folder(tmp_path / "flats", model, frame, None, **flavors)
    sys.modules.pop("flat_features")  # pickled by reference: the server must find it itself
    (folder / "code").mkdir()
    (folder / "code" / "flat_features.py").write_text(code)
    rows = json.loads(frame.to_json(orient="records"))
    with running_server([str(folder)], cwd=tmp_path) as server:
        answer = requests.post(f"{server.url}/invocations", json={"inputs": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    want = model.predict(frame).tolist()
    assert np.allclose(answer.json()["predictions"], want, rtol=0, atol=TOLERANCE)

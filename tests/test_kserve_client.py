"""KServe's published Python client (``kserve.InferenceRESTClient``, Open Inference Protocol v2)
against a real server. The client pulls in a large stack of its own (FastAPI, gRPC, the
Kubernetes client) and pins other versions of pandas and psutil, so it gets a virtual
environment of its own and runs there, as it would on a colleague's machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.conftest import PIP_CACHE, iris_frame
from tests.helpers import running_server

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.spawn]

CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

url, name, rows = sys.argv[1], sys.argv[2], np.array(json.loads(sys.argv[3]), dtype=np.float32)

async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    answers = {"live": await client.is_server_live(url),
               "ready": await client.is_model_ready(url, name)}
    for binary in (False, True):
        tensor = InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        outputs = [RequestedOutput("predict"), RequestedOutput("predict_proba")]
        request = InferRequest(name, [tensor], request_id="k1", request_outputs=outputs)
        result = await client.infer(url, request, model_name=name)
        answers["binary" if binary else "json"] = {
            "id": result.id,
            "predict": [v.decode() if isinstance(v, bytes) else v
                        for v in result.outputs[0].as_numpy().ravel().tolist()],
            "predict_proba": result.outputs[1].as_numpy().tolist(),
        }
    print(json.dumps(answers))

asyncio.run(main())
"""


@pytest.fixture(scope="session")
def kserve_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client's own virtual environment. Installing it takes minutes on a cold pip cache,
    so it has deadlines of its own here and the test's timeout counts only the test (the
    marker's func_only below), not this setup."""
    folder = tmp_path_factory.mktemp("kserve-client")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "kserve>=0.15"],
        check=True,
        timeout=1800,
        env={**os.environ, "PIP_CACHE_DIR": PIP_CACHE},  # the user's cache, not the test run's
    )
    return python


@pytest.mark.timeout(120, func_only=True)
def test_kserve_client_gets_the_models_predictions(
    kserve_python: Path, iris_forest: Path, tmp_path: Path
) -> None:
    model = joblib.load(iris_forest)
    x, _ = iris_frame()
    rows = x.iloc[::13].to_numpy(dtype=np.float32)
    frame = pd.DataFrame(rows, columns=x.columns)
    with running_server([str(iris_forest)], cwd=tmp_path) as server:
        run = subprocess.run(
            [
                str(kserve_python),
                "-c",
                CLIENT,
                server.url,
                "iris forest",
                json.dumps(rows.tolist()),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    answers = json.loads(run.stdout.strip().splitlines()[-1])
    assert answers["live"] is True and answers["ready"] is True
    for mode in ("json", "binary"):
        got = answers[mode]
        assert got["id"] == "k1", mode
        assert got["predict"] == model.predict(frame).tolist(), mode
        assert np.allclose(got["predict_proba"], model.predict_proba(frame)), mode

"""A scikit-learn-style model's host runs one OpenMP thread per call (host/openmp.py): an
OpenMP team spinning for a busy core made a HistGradientBoosting model's calls 100 times
slower at worst. Checked in a process of its own, as the model host is one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

pytestmark = pytest.mark.timeout(120)

PROBE = """
import json, sys
from threadpoolctl import threadpool_info
from winserve.host import ModelHost
from winserve.model_info import ModelSpec
answer = ModelHost().load(ModelSpec(path=sys.argv[1], intra_op_threads=int(sys.argv[2])))
assert answer["ok"], answer
print(json.dumps([i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]))
"""


@pytest.fixture(scope="module")
def boosted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4))
    path = tmp_path_factory.mktemp("openmp") / "boosted.joblib"
    joblib.dump(HistGradientBoostingRegressor(max_iter=10).fit(x, x[:, 0]), path)
    return path


def _threads(path: Path, setting: int) -> list[int]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(setting)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    threads: list[int] = json.loads(run.stdout.strip().splitlines()[-1])
    return threads


def test_the_models_openmp_runs_one_thread_a_call(boosted: Path) -> None:
    threads = _threads(boosted, 0)
    assert threads and set(threads) == {1}, threads


def test_the_setting_intra_op_threads_chooses_another_count(boosted: Path) -> None:
    assert set(_threads(boosted, 3)) == {3}

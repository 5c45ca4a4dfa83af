"""Time of one explanation: ``python bench/explain.py [--repeat N]`` (issue 25).

One row of a 200-tree random forest with 20 inputs (permutation sampling: beyond 10 inputs),
its reference sample 1,000 training rows: explained by the model host in this process
(``ModelHost.explain``, the engine and the model's own predict calls) and through a real
server (``POST /predict?explain=true``: waitress, a spawned host, the pool's queue). The
forest is fitted here on scikit-learn's ``make_regression`` / ``make_classification`` data.

Prints one markdown table row per case: model rows scored, background rows, median and worst
seconds of ``--repeat`` runs, and the load average when the case started.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import running_server  # noqa: E402
from winserve.host.model_host import ModelHost  # noqa: E402
from winserve.model_info import ModelSpec  # noqa: E402

INPUTS = 20
TREES = 200


def forests(folder: Path) -> dict[str, tuple[Path, pd.DataFrame]]:
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    names = [f"x{i}" for i in range(INPUTS)]
    made: dict[str, tuple[Path, pd.DataFrame]] = {}
    x, y = make_regression(n_samples=2000, n_features=INPUTS, noise=5.0, random_state=0)
    frame = pd.DataFrame(x, columns=names)
    regressor = RandomForestRegressor(n_estimators=TREES, random_state=0).fit(frame, y)
    x, y = make_classification(n_samples=2000, n_features=INPUTS, random_state=0)
    classifier = RandomForestClassifier(n_estimators=TREES, random_state=0).fit(
        pd.DataFrame(x, columns=names), y
    )
    for name, model, data in (
        ("forest_regressor", regressor, frame),
        ("forest_classifier", classifier, pd.DataFrame(x, columns=names)),
    ):
        path = folder / f"{name}.joblib"
        joblib.dump(model, path)
        data.sample(1000, random_state=0).to_csv(folder / f"{name}.reference.csv", index=False)
        made[name] = (path, data)
    return made


def timed(call: Any, repeat: int) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - began)
    return seconds, result


def row_line(
    case: str, where: str, seconds: list[float], found: dict[str, Any], load: float
) -> str:
    return (
        f"| {case} | {where} | {found['method']} | {found['background_rows']} | "
        f"{statistics.median(seconds):.3f} | {max(seconds):.3f} | {load:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print("| model | where | method | background rows | median s | worst s | load avg |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, (path, data) in forests(Path(folder)).items():
            row = data.iloc[:1]
            host = ModelHost()
            assert host.load(ModelSpec(path=str(path)))["ok"]
            payload = {"matrix": row.to_numpy()}
            load = os.getloadavg()[0]
            seconds, answer = timed(functools.partial(host.explain, payload, {}), args.repeat)
            assert answer["ok"], answer
            print(
                row_line(name, "model host, in process", seconds, answer["explanations"][0], load)
            )
            with running_server([str(path)], cwd=Path(folder)) as server:
                url = f"{server.url}/predict?explain=true"
                body = row.to_dict(orient="records")
                load = os.getloadavg()[0]
                post = functools.partial(requests.post, url, json=body, timeout=60)
                seconds, response = timed(post, args.repeat)
                response.raise_for_status()
                found = response.json()["explanations"][0]
                print(row_line(name, "server, /predict?explain=true", seconds, found, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

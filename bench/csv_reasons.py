"""Scoring a CSV with each row's top reasons: ``python bench/csv_reasons.py [--rows 50]``.

Against a real server (``python -m winserve``: waitress, a spawned model host, the pool), a
program uploads ``--rows`` rows to ``POST /jobs`` with and without ``explain=true`` (issue 25)
and polls the job until it ends. Two models, each with a 1,000-row reference sample beside
it: a logistic regression of 4 inputs (exact Shapley values: 16 coalitions) and bench/explain's
200-tree random forest classifier of 20 inputs (permutation sampling). Prints one markdown
table row per case: seconds to the result, seconds per row, and the load average at the start.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import joblib
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import running_server

PROGRAM = {"X-Winserve-Client": "1"}  # a program's upload: no form token needed


def models(folder: Path) -> dict[str, tuple[Path, pd.DataFrame]]:
    """The two models saved in ``folder`` with their reference samples, and their data."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    made: dict[str, tuple[Path, pd.DataFrame]] = {}
    for name, inputs, model in (
        ("logistic_4", 4, LogisticRegression(max_iter=1000)),
        ("forest_20", 20, RandomForestClassifier(n_estimators=200, random_state=0)),
    ):
        x, y = make_classification(
            n_samples=2000,
            n_features=inputs,
            n_informative=min(inputs, 4),
            n_redundant=0,
            random_state=0,
        )
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(inputs)])
        path = folder / f"{name}.joblib"
        joblib.dump(model.fit(frame, y), path)
        frame.sample(1000, random_state=0).to_csv(path.with_suffix(".reference.csv"), index=False)
        made[name] = (path, frame)
    return made


def scored_seconds(url: str, body: bytes, explain: bool) -> float:
    began = time.perf_counter()
    answer = requests.post(
        url + "/jobs",
        files={"file": ("rows.csv", body, "text/csv")},
        data={"explain": "true" if explain else "false"},
        headers=PROGRAM,
        timeout=30,
    )
    answer.raise_for_status()
    status_url = answer.json()["status_url"]
    while True:
        status = requests.get(status_url, timeout=30).json()
        if status["state"] in ("done", "failed"):
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    if status["state"] != "done":
        raise SystemExit(f"the job failed: {status['error']}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50)
    rows = parser.parse_args().rows
    print("| model | rows | reasons | seconds | seconds a row | load |")
    print("|---|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        for name, (path, frame) in models(folder).items():
            body = frame.sample(rows, random_state=1).to_csv(index=False).encode()
            with running_server([str(path)], cwd=folder) as server:
                url = server.url
                for explain in (False, True):
                    load = os.getloadavg()[0]
                    seconds = scored_seconds(url, body, explain)
                    print(
                        f"| {name} | {rows} | {'yes' if explain else 'no'} | {seconds:.2f} | "
                        f"{seconds / rows:.3f} | {load:.2f} |"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

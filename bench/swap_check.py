"""What the checked swap costs (issue 26): ``python bench/swap_check.py [--model forest]``.

A registry in this process (as the server's) over a folder with one model, its reference
sample (``--reference`` rows) and a prediction log holding ``--logged`` rows of that model
(float64 rows, as the writer stores numbers), its model hosts real spawned processes
(``workers = 1``). Each run writes a retrain (another seed) over the file and loads it: the
new version answers the check rows beside the serving one before it swaps in. Prints, per
run, the check's wall time, the CPU time of this process during it (reading the sample and
the log, validation, pickling to the hosts, the comparison: all its threads) and of the model
hosts (both versions' predictions), the rows compared and the model calls made, then the
medians and the load average (CPU seconds are what hold under a busy machine; the wall time
does not: read it with the load).

``--model lr``: StandardScaler + LogisticRegression; ``forest``: a 200-tree random forest;
both on 20 numeric columns (scikit-learn's make_classification, 6,000 rows).
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import joblib
import psutil

NAME = "model"
COLUMNS = [f"f{i}" for i in range(20)]


def train(kind: str, seed: int) -> Any:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(n_samples=6000, n_features=20, n_informative=8, random_state=0)
    frame = pd.DataFrame(x, columns=COLUMNS)
    if kind == "forest":
        model: Any = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 + seed / 10))
    return model.fit(frame, y), frame


def write_log(path: Path, rows: list[list[float]]) -> None:
    """``rows`` as one logged request each, in the writer's format for numbers."""
    from winserve.predlog import store

    conn = store.connect(path)
    try:
        names = json.dumps(COLUMNS, separators=(",", ":"))
        conn.execute("INSERT OR IGNORE INTO column_sets (names) VALUES (?)", (names,))
        (cid,) = conn.execute("SELECT id FROM column_sets WHERE names = ?", (names,)).fetchone()
        conn.execute("BEGIN")
        for i, row in enumerate(rows):
            conn.execute(
                "INSERT INTO requests (request_id, time, model, route, method, latency_ms, "
                "status, n_rows, columns, inputs) VALUES (?, ?, ?, '/predict', 'POST', 1, 200, "
                "1, ?, ?)",
                (f"r{i}", time.time() - len(rows) + i, NAME, cid, array.array("d", row).tobytes()),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def children_cpu() -> float:
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("lr", "forest"), default="lr")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference", type=int, default=2000)
    parser.add_argument("--logged", type=int, default=2000)
    args = parser.parse_args(argv)

    from winserve.models import swap as swap_module
    from winserve.models import swap_rows
    from winserve.models.registry import Registry
    from winserve.server import backend_maker
    from winserve.settings import Settings

    measured: list[dict[str, Any]] = []
    original = swap_module.Swap._check

    def timed(self: Any, *a: Any, **k: Any) -> Any:
        wall, cpu, hosts = time.perf_counter(), time.process_time(), children_cpu()
        found = original(self, *a, **k)
        measured.append(
            {
                "wall": time.perf_counter() - wall,
                "cpu": time.process_time() - cpu,
                "hosts": children_cpu() - hosts,
                "rows": found[0].rows,
                "agreement": found[0].agreement,
            }
        )
        return found

    swap_module.Swap._check = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        model, frame = train(args.model, 0)
        path = folder / f"{NAME}.joblib"
        joblib.dump(model, path)
        frame.sample(args.reference, random_state=1).to_csv(
            folder / f"{NAME}.reference.csv", index=False
        )
        log = Path(tmp) / "log.sqlite"
        write_log(log, frame.sample(args.logged, random_state=2).to_numpy().tolist())
        settings = Settings(model=folder, log=True, log_path=log, workers=1, watch=True)
        registry = Registry(settings, backend_maker(settings))
        try:
            assert registry.load(NAME, path), registry.entry(NAME).reason
            for run in range(args.runs):
                retrained, _ = train(args.model, run + 1)
                part = path.with_name(path.name + ".part")
                joblib.dump(retrained, part)
                os.replace(part, path)
                assert registry.load(NAME, path), registry.entry(NAME).reason
                m = measured[-1]
                calls = 2 * math.ceil(m["rows"] / swap_rows.CHUNK)
                print(
                    f"run {run + 1}: {m['rows']} rows, {calls} model calls, check "
                    f"{m['wall']:.3f} s wall, {m['cpu']:.3f} s CPU here, {m['hosts']:.3f} s "
                    f"CPU in the model hosts, agreement {m['agreement']:.4f}",
                    flush=True,
                )
        finally:
            registry.close()
    for key, unit in (("wall", "s wall"), ("cpu", "s CPU here"), ("hosts", "s CPU hosts")):
        print(f"median {key}: {statistics.median(m[key] for m in measured):.3f} {unit}")
    rows = measured[-1]["rows"]
    cpu = statistics.median(m["cpu"] for m in measured)
    print(f"CPU here per row compared: {cpu / rows * 1e6:.0f} µs ({args.model})")
    print("load average:", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

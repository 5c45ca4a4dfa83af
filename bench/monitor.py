"""What the monitor page's figures cost (issue 26): ``python bench/monitor.py [--requests 50000]
[--runs 5] [--server]``.

Writes a prediction log of ``--requests`` one-row requests spread over the last 7 days (four
number inputs and a category, a class answer, latencies, 3 % errors) and a few events into a
fresh temporary file with the store's own writes, then measures what ``/monitor.json`` reads
for the default period (the last week), each step with the CPU time of this process
(``time.process_time``: robust on a busy machine) and the wall time, best of ``--runs``:

- ``summary.summarize_file`` (requests, errors, latency per day, class shares), and the same
  over the last 2 days (per hour) and as a regressor (percentiles of the answers);
- ``events.read_file`` (the timeline);
- ``drift.logged_sample`` + ``drift.drift`` against a 2,000-row reference (the drift table);
- ``usage.per_model`` (a folder's monitor index: each model's requests, errors, last one);
- with ``--server``: the whole ``/monitor.json`` and ``/monitor`` page of a real server
  (``python -m winserve`` serving tests' churn model with that log, and a second model so
  that the bare ``/monitor`` is the folder's index), the server process's CPU time per
  request (psutil) and the wall time; the index's too (its drift line compares churn).

Prints one line per step and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from winserve.backends.base import Prediction
from winserve.predlog import drift, events, store, summary, usage
from winserve.predlog.store import Entry
from winserve.service import PredictRequest

MODEL = "churn"
SHA = "ab" * 32
BATCH = 2000
DAY = 86_400.0
COLUMNS = ["tenure", "spend", "calls", "age", "plan"]


def build(path: Path, count: int, now: float) -> None:
    """A log of ``count`` one-row requests over the 7 days before ``now``, and 20 events."""
    rng = random.Random(7)
    conn = store.connect(path)
    try:
        for first in range(0, count, BATCH):
            entries = []
            for i in range(first, min(first + BATCH, count)):
                at = now - 7 * DAY + 7 * DAY * i / count
                failed = rng.random() < 0.03
                request = PredictRequest.from_columns(
                    {
                        **{c: [rng.gauss(50, 15)] for c in COLUMNS[:4]},
                        "plan": [rng.choice(["basic", "pro", "team"])],
                    }
                )
                entries.append(
                    Entry(
                        at,
                        f"r{i}",
                        MODEL,
                        1,
                        SHA,
                        "/predict",
                        "POST",
                        "127.0.0.1",
                        rng.lognormvariate(1.0, 0.6),
                        400 if failed else 200,
                        1,
                        None if failed else request,
                        COLUMNS,
                        None if failed else Prediction([rng.choice(["leaves", "stays"])]),
                    )
                )
            store.write(conn, entries, keep_inputs=True)
        happened: list[events.Event] = [
            (events.MARK, now - 7 * DAY + i * DAY / 3, MODEL, i + 1, SHA, "loaded", "")
            for i in range(20)
        ]
        events.write(conn, happened)
    finally:
        conn.close()


def measure(label: str, runs: int, step: Callable[[], Any]) -> None:
    best_cpu = best_wall = float("inf")
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        step()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    print(f"{label:58s} cpu {best_cpu * 1000:7.1f} ms   wall {best_wall * 1000:7.1f} ms")


def served(folder: Path, log: Path, runs: int) -> None:
    """``/monitor.json`` and ``/monitor`` of a real server reading ``log``: the server's CPU
    per request (its process's user + system time) and the wall time, best of ``runs``."""
    import psutil
    import requests

    from tests.helpers import running_server
    from tests.model_files import churn_files, constant_model

    models = folder / "models"
    models.mkdir()
    churn_files(models)  # named churn, as the log's model; its reference sample beside it
    # a second model: the bare /monitor is the folder's index (issue 26)
    constant_model(models / "const.joblib", 7.0)
    with running_server([str(models), "--log-path", str(log)], cwd=folder) as server:
        process = psutil.Process(server.proc.pid)
        for page in (f"models/{MODEL}/monitor.json", f"models/{MODEL}/monitor", "monitor.json"):
            url = f"{server.url}/{page}"
            requests.get(url, timeout=60).raise_for_status()  # warm: imports, the reference
            best_cpu = best_wall = float("inf")
            for _ in range(runs):
                cpu, wall = sum(process.cpu_times()[:2]), time.perf_counter()
                requests.get(url, timeout=60).raise_for_status()
                best_wall = min(best_wall, time.perf_counter() - wall)
                best_cpu = min(best_cpu, sum(process.cpu_times()[:2]) - cpu)
            label = f"a real server's GET /{page}" + ("" if MODEL in page else " (index)")
            print(f"{label:58s} cpu {best_cpu * 1000:7.1f} ms   wall {best_wall * 1000:7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server", action="store_true", help="also time a real server's")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    now = time.time()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.sqlite"
        build(path, args.requests, now)
        print(f"log: {args.requests} requests, {path.stat().st_size / 1e6:.1f} MB")
        week, two_days = now - 7 * DAY, now - 2 * DAY
        rng = random.Random(3)
        reference = {c: [rng.gauss(50, 15) for _ in range(2000)] for c in COLUMNS[:4]}
        reference["plan"] = [rng.choice(["basic", "pro", "team"]) for _ in range(2000)]
        runs = args.runs
        measure(
            "summary, last 7 days per day, classifier",
            runs,
            lambda: summary.summarize_file(path, MODEL, week, now, classifier=True),
        )
        measure(
            "summary, last 7 days per day, as a regressor",
            runs,
            lambda: summary.summarize_file(path, MODEL, week, now, classifier=False),
        )
        measure(
            "summary, last 2 days per hour, classifier",
            runs,
            lambda: summary.summarize_file(path, MODEL, two_days, now, classifier=True),
        )
        measure("events (the timeline)", runs, lambda: events.read_file(path, MODEL, week, now))

        def drifted() -> None:
            logged, _, _ = drift.logged_sample(path, MODEL, week, now, COLUMNS)
            drift.drift(reference, logged, {"plan": "category"})

        measure("drift: logged inputs (sampled) and PSI", runs, drifted)
        measure(
            "each model's requests (a folder's monitor index)",
            runs,
            lambda: usage.per_model(path, week, now),
        )
        if args.server:
            served(Path(folder), path, runs)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

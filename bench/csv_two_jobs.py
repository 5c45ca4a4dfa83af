"""Two CSV jobs at once, and another user meanwhile: ``python bench/csv_two_jobs.py``.

Against a real server (``python -m winserve`` with the 200-tree forest of
``bench/csv_scoring.py``), uploads the same CSV twice at once the way the page does, and
measures the other user's ``/predict`` latency (one request every 50 ms) until both jobs have
ended, and the jobs' rows per second together. With two jobs, a user's request could wait
behind the chunk the model is computing and the other job's chunk queued before it; since
issue 29 it waits for the first only (interactive calls go first in the pool).
``--runs N`` repeats it (a new server each time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.csv_scoring import IRIS, forest, write_csv
from tests import csv_server
from tests.helpers import running_server


def two_jobs(url: str, data: bytes, rows: int) -> tuple[float, float, float]:
    """Rows per second of both jobs, and the other user's p50 and max in ms."""
    latencies: list[float] = []
    done = threading.Event()
    row = [dict(zip(IRIS, (5.1, 3.5, 1.4, 0.2), strict=True))]

    def other_user() -> None:
        while not done.is_set():
            started = time.perf_counter()
            requests.post(url + "/predict", json=row, timeout=30).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)

    sessions = [requests.Session(), requests.Session()]
    started = time.perf_counter()
    jobs = [csv_server.submit(session, f"{url}/", data) for session in sessions]
    user = threading.Thread(target=other_user, daemon=True)
    user.start()
    try:
        for session, job in zip(sessions, jobs, strict=True):
            status = csv_server.finished(session, url, job, 300)
            assert status["scored_rows"] == rows, status
    finally:
        done.set()
        user.join(10)
    seconds = time.perf_counter() - started
    return 2 * rows / seconds, statistics.median(latencies), max(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows of each file")
    parser.add_argument("--runs", type=int, default=1)
    options = parser.parse_args()
    print("| run | rows/s (both jobs) | other user's /predict p50 / max | load (1 min) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="winserve-two-jobs-") as name:
        folder = Path(name)
        upload = folder / "rows.csv"
        write_csv(upload, options.rows)
        data = upload.read_bytes()
        model = forest(folder)
        for run in range(1, options.runs + 1):
            with running_server([str(model)], cwd=folder) as server:
                rate, p50, worst = two_jobs(server.url, data, options.rows)
            load = os.getloadavg()[0]
            print(f"| {run} | {rate:,.0f} | {p50:.1f} / {worst:.0f} ms | {load:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

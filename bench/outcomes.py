"""What outcome uploads and the accuracy section cost (issue 26):
``python bench/outcomes.py [--requests 200000] [--outcomes 20000]``.

Writes a prediction log of ``--requests`` one-row requests (customer_id and four numbers, a
class 0/1) into a fresh temporary file with the store's own writes, then measures, each with
the CPU time of this process (``time.process_time``: robust on a busy machine) and the wall
time:

- ``outcomes.save`` of ``--outcomes`` outcomes by request id (one pass over the requests);
- for comparison, a requests(request_id) index, the design not taken: the log's write lock
  would be held that long (the writer process waits at most ~1 s for it: ``store.BUSY_MS``);
- ``outcomes.save`` by customer_id (a search of the model's logged inputs, newest first);
- what the monitor page reads: ``outcomes.joined`` and ``accuracy.scores``.

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
from winserve.predlog import accuracy, outcomes, store
from winserve.predlog.store import Entry
from winserve.service import PredictRequest

MODEL = "churn"
SHA = "ab" * 32
BATCH = 2000
# the design not taken (predlog/outcome_matches.py's docstring): an index made by the first upload
INDEX = "CREATE INDEX requests_request_id ON requests (request_id)"


def build(path: Path, count: int, start: float) -> list[str]:
    """A log of ``count`` one-row requests, one a second from ``start``; their ids."""
    rng = random.Random(7)
    ids = [f"{rng.getrandbits(32):08x}{i:08x}" for i in range(count)]
    conn = store.connect(path)
    try:
        for first in range(0, count, BATCH):
            entries = []
            for i in range(first, min(first + BATCH, count)):
                columns = {
                    "customer_id": [100_000 + i],
                    **{name: [rng.random()] for name in ("a", "b", "c", "d")},
                }
                entries.append(
                    Entry(
                        start + i, ids[i], MODEL, 1, SHA, "/predict", "POST", "127.0.0.1",
                        1.0, 200, 1, PredictRequest.from_columns(columns),
                        ["customer_id", "a", "b", "c", "d"], Prediction([i % 2]),
                    )
                )  # fmt: skip
            store.write(conn, entries, keep_inputs=True)
    finally:
        conn.close()
    return ids


def measured(what: str, call: Callable[[], Any]) -> Any:
    cpu, wall = time.process_time(), time.perf_counter()
    found = call()
    print(
        f"{what}: CPU {time.process_time() - cpu:.3f} s, wall {time.perf_counter() - wall:.3f} s",
        flush=True,
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--outcomes", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    start = time.time() - args.requests - 60
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.sqlite"
        ids = measured(
            f"log of {args.requests} requests written", lambda: build(path, args.requests, start)
        )
        print(f"log file: {path.stat().st_size / 1e6:.1f} MB")
        rng = random.Random(8)
        chosen = rng.sample(range(args.requests), args.outcomes)

        by_id = {ids[i]: str(rng.randint(0, 1)) for i in chosen}
        saved = measured(
            f"save {args.outcomes} outcomes by request id",
            lambda: outcomes.save(path, MODEL, outcomes.REQUEST_ID, by_id, days=365),
        )
        print(f"  matched {saved.matched}, unmatched {saved.unmatched}")

        def index() -> None:
            conn = store.connect(path)
            try:
                conn.execute(INDEX)
            finally:
                conn.close()

        measured("for comparison, a requests(request_id) index (the write lock held)", index)
        by_key = {str(100_000 + i): str(rng.randint(0, 1)) for i in chosen}
        saved = measured(
            f"save {args.outcomes} outcomes by customer_id",
            lambda: outcomes.save(path, MODEL, "customer_id", by_key, days=365),
        )
        print(f"  matched {saved.matched}, searched {saved.searched_rows} rows")

        def page() -> int:
            found = outcomes.joined(path, MODEL, 0, time.time() + 1)
            return len(accuracy.scores(found.joined, False))

        rows = measured("the monitor's accuracy section (joined + scores)", page)
        print(f"  {rows} score rows")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

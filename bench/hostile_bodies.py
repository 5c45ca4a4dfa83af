"""What hostile request bodies cost: ``python bench/hostile_bodies.py``.

Bodies that name many columns (issue 13 item 3): ``{"columns": [N names], "data": [[N values]]}``
to ``/predict`` and a CSV header of N names to ``/invocations``, sent to the app in this process
(Flask's test client, the model in the web process), each timed once. A decoder whose cost grows
faster than the body shows here as seconds per megabyte climbing with N.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.helpers import local_client
    from winserve.model_info import ModelSpec

    client = local_client(ModelSpec(factory="tests.models:chaos"))
    print("| columns | body MB | /predict split s | /invocations CSV s | s per MB (split) |")
    print("|---|---|---|---|---|")
    for n in (20_000, 200_000, 1_000_000):
        names = [f"c{i}" for i in range(n)]
        body = json.dumps({"columns": names, "data": [[0] * n]})
        started = time.perf_counter()
        answer = client.post("/predict", data=body, content_type="application/json")
        split = time.perf_counter() - started
        assert answer.status_code == 400, answer.status_code
        csv_body = ",".join(names) + "\n" + ",".join(["0"] * n)
        started = time.perf_counter()
        answer = client.post("/invocations", data=csv_body, content_type="text/csv")
        header = time.perf_counter() - started
        assert answer.status_code == 400, answer.status_code
        megabytes = len(body) / 1e6
        print(f"| {n:,} | {megabytes:.1f} | {split:.2f} | {header:.2f} | {split / megabytes:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

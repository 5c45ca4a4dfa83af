"""The prediction log's cost on the request thread: ``python bench/log_hook.py [--requests N]``.

Issue 29's measure of the log's ``after_request`` hook (``web/prediction_log.py``), robust on a
busy machine: the app on Flask's test client with bench/run.py's logistic regression (30
columns) in this process, the log's queue emptied every 500 requests as its sender thread
would, and the hook wrapped in ``time.thread_time_ns`` (this thread's CPU time, not the
clock's). Prints the hook's CPU per request for three bodies (one record, ten records, a split
body of one row), three rounds each, and what the measuring itself costs (an empty hook in
the same wrapper: subtract it). Real caches: each request runs the whole app before the hook.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import train
from winserve.backends.local import LocalBackend
from winserve.model_info import ModelSpec
from winserve.predlog.writer import PredictionLog
from winserve.settings import Settings
from winserve.web import create_app

DRAIN = 500  # requests between two empties of the queue (~0.5 s of traffic, the sender's tick)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="winserve-hook-") as folder:
        work = Path(folder)
        model = train(work, quick=True)["logistic regression"]
        backend = LocalBackend(ModelSpec(path=str(model)))
        backend.start()
        backend.wait_ready(60)
        plog = PredictionLog(work / "log.sqlite")  # never started: the queue is only filled
        app = create_app(Settings(), backend, prediction_log=plog)
        hooks = app.after_request_funcs[None]
        place = next(i for i, f in enumerate(hooks) if f.__name__ == "log_prediction")
        active: list[Any] = [hooks[place]]
        spent = [0, 0]

        def timed(response: Any) -> Any:
            began = time.thread_time_ns()
            answer = active[0](response)
            spent[0] += time.thread_time_ns() - began
            spent[1] += 1
            return answer

        hooks[place] = timed
        client = app.test_client()
        row = json.loads((work / "row.json").read_text())
        bodies = {
            "1 record": row,
            "10 records": row * 10,
            "split, 1 row": {"columns": list(row[0]), "data": [list(row[0].values())]},
        }

        def run(data: bytes) -> float:
            spent[:] = [0, 0]
            for i in range(args.requests):
                answer = client.post("/predict", data=data, content_type="application/json")
                if i % DRAIN == DRAIN - 1:
                    plog._queue.clear()
            assert answer.status_code == 200, answer.data
            plog._queue.clear()
            return spent[0] / spent[1] / 1000

        for name, body in bodies.items():
            data = json.dumps(body).encode()
            run(data)  # warm-up
            rounds = [run(data) for _ in range(3)]
            shown = ", ".join(f"{r:.2f}" for r in rounds)
            print(f"{name}: the hook's CPU per request, µs: {shown}")
        active[0] = lambda response: response
        empty = run(json.dumps(bodies["1 record"]).encode())
        print(f"the measuring itself (an empty hook): {empty:.2f} µs")
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The swap of a retrained model file under load: ``python bench/swap.py`` (issue 15).

Serves a folder of two models (``python -m winserve FOLDER``, real model hosts), sends
requests from ``--clients`` threads for ``--seconds``, and after a few seconds overwrites one
model file with a retrained one (written under another name, then ``os.replace``, as a retrain
script does). Prints the answers by status before, during (from the replace until the new
version answers everywhere) and after the swap, the time from the replace until the first and
the last client got the new model's answer, and the load time the console reported.

``--model forest`` swaps a 200-tree random forest (a load of a second or more) instead of a
constant regressor (milliseconds), to show how the load time adds to the swap.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import running_server

ROW = {"a": 1.0, "b": 2.0}


def write_model(path: Path, kind: str, version: int) -> None:
    """A model on columns a, b whose answer tells its version apart."""
    frame = pd.DataFrame({"a": np.arange(200.0), "b": np.arange(200.0)[::-1]})
    if kind == "forest":
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(n_estimators=200, random_state=0)
        model.fit(frame, np.full(200, float(version)))
    else:
        from sklearn.dummy import DummyRegressor

        model = DummyRegressor(strategy="constant", constant=float(version))
        model.fit(frame, np.zeros(200))
    joblib.dump(model, path)


def client(url: str, stop: threading.Event, seen: list[tuple[float, int, float | None]]) -> None:
    session = requests.Session()
    while not stop.is_set():
        try:
            answer = session.post(f"{url}/models/swapped/predict", json=[ROW], timeout=30)
            value = answer.json()["predictions"][0] if answer.status_code == 200 else None
            seen.append((time.monotonic(), answer.status_code, value))
        except requests.RequestException:
            seen.append((time.monotonic(), -1, None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--watch-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", choices=("constant", "forest"), default="constant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        write_model(folder / "swapped.joblib", args.model, 1)
        write_model(folder / "other.joblib", "constant", 9)
        command = [str(folder), "--watch-seconds", str(args.watch_seconds)]
        command += ["--workers", str(args.workers)]
        with running_server(command, cwd=Path(tmp)) as server:
            seen: list[tuple[float, int, float | None]] = []
            stop = threading.Event()
            threads = [
                threading.Thread(target=client, args=(server.url, stop, seen), daemon=True)
                for _ in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            time.sleep(min(4.0, args.seconds / 4))
            write_model(Path(tmp) / "retrained.joblib", args.model, 2)
            replaced = time.monotonic()
            os.replace(Path(tmp) / "retrained.joblib", folder / "swapped.joblib")
            time.sleep(max(0.0, args.seconds - (time.monotonic() - replaced)))
            stop.set()
            for thread in threads:
                thread.join(timeout=35)
            try:
                loaded = [server.wait_for_line(lambda line: "version 2 serving" in line, 5)]
            except AssertionError:
                loaded = []
    new = [t for t, _, v in seen if v == 2.0]
    if not new:
        print("the new version never answered")
        return 1
    first = min(new) - replaced
    # the last answer of the old version after the replace: in-flight requests finishing
    last_old = max((t for t, _, v in seen if v == 1.0), default=replaced) - replaced
    swap_end = replaced + max(first, last_old)
    phases = {
        "before the replace": [s for t, s, _ in seen if t < replaced],
        "replace → new version everywhere": [s for t, s, _ in seen if replaced <= t <= swap_end],
        "after": [s for t, s, _ in seen if t > swap_end],
    }
    print(
        f"{args.clients} clients, {args.seconds:g} s, watch_seconds {args.watch_seconds:g}, "
        f"workers {args.workers}, model {args.model}"
    )
    for phase, statuses in phases.items():
        counts = dict(sorted(collections.Counter(statuses).items()))
        print(f"  {phase:<34} {len(statuses):>6} answers  by status {counts}")
    print(f"  first answer of version 2          {first:6.2f} s after the replace")
    print(f"  last answer of version 1           {last_old:6.2f} s after the replace")
    print(f"  console: {loaded[0].split(': ', 1)[-1] if loaded else '(no line)'}")
    bad = sum(1 for _, s, _ in seen if s != 200)
    print(f"  non-200 answers in all: {bad} of {len(seen)}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The web process's cost of one lone call through the pool: ``python bench/pool_call.py``.

Issue 29 (c=1 is the common case) and issue 23 (a short path): one single-row
``PoolBackend.predict`` at a time, as a lone ``POST /predict`` makes it, measured two ways::

    this script ── PoolBackend.predict({"matrix": 1 × 4}) ─► a replica
                     │                                        ├─ fake: answers at once, no process
                     │                                        └─ real: the demo model in its
                     │                                           spawned model host
                     └─ CPU of THIS process per call (time.process_time), best of --runs

plus the winserve functions one call runs in this process (``sys.setprofile``), by module:
the backend's own steps, the thing issue 23 asks to shorten; and the queued path: 32 callers
at once on a fake replica whose model call takes 1 ms (a sleep: no CPU), CPU per request and
the rows per model call the dispatcher formed. CPU time, not wall clock: the
machine is shared, and the host's own work is not this process's. Best of N runs, as noise
only ever adds.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from winserve.backends.pool import PoolBackend  # noqa: E402
from winserve.backends.runner import Lifecycle, ReplicaRunner  # noqa: E402
from winserve.host.answers import AskAnswer, HostInfo, PredictAnswer  # noqa: E402
from winserve.host.demo import ensure_demo_model  # noqa: E402
from winserve.model_info import ModelSpec  # noqa: E402

PACKAGE = str(ROOT / "winserve") + os.sep
ROW = np.array([[5.1, 3.5, 1.4, 0.2]])


class InstantReplica(Lifecycle):
    """A replica whose "host" answers at once: what is left is the pool's own cost."""

    latency = 0.0  # seconds of a model call, slept (no CPU of this process)

    def start(self, load_timeout: float) -> HostInfo:
        self.loaded_since(time.monotonic())
        return {
            "name": "instant",
            "model_type": "Instant",
            "task": "regression",
            "features": [{"name": f"x{i}"} for i in range(4)],
            "feature_names_known": True,
            "source": "",
            "sha256": "",
        }

    def predict(
        self, payload: dict[str, Any], proba: bool, timeout: float, scores: bool = False
    ) -> PredictAnswer:
        if self.latency:
            time.sleep(self.latency)
        rows = len(payload["matrix"])
        return {"ok": True, "predictions": [0] * rows, "probabilities": None, "scores": None}

    def ask(
        self, name: str, payload: dict[str, Any], options: dict[str, Any], timeout: float
    ) -> AskAnswer:
        return {"ok": True}

    def alive(self) -> bool:
        return True

    def exit_description(self) -> str:
        return ""

    def kill(self) -> None:
        pass

    def stop(self) -> None:
        self.mark("stopped")


def make_instant(index: int, spec: ModelSpec) -> ReplicaRunner:
    return InstantReplica(index, spec)


class SlowReplica(InstantReplica):
    latency = 0.001


def make_slow(index: int, spec: ModelSpec) -> ReplicaRunner:
    return SlowReplica(index, spec)


def queued(callers: int, calls: int, runs: int) -> None:
    """``callers`` threads at once, ``calls`` each: CPU per request, best of ``runs``."""
    pool = PoolBackend(ModelSpec(), make_replica=make_slow)
    pool.start()
    pool.wait_ready(60)
    payload = {"matrix": ROW}

    def work() -> None:
        for _ in range(calls):
            pool.predict(payload)

    best = float("inf")
    try:
        for _ in range(runs):
            threads = [threading.Thread(target=work) for _ in range(callers)]
            began = time.process_time()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            best = min(best, (time.process_time() - began) / (callers * calls))
    finally:
        pool.close()
    sums = {s.name: s.value for m in pool.batch_rows.collect() for s in m.samples}
    mean = sums["winserve_batch_rows_sum"] / max(1.0, sums["winserve_batch_rows_count"])
    print(
        f"queued, {callers} callers, fake replica (1 ms a call): {best * 1e6:.1f} µs CPU per "
        f"request (best of {runs} × {callers * calls}), {mean:.1f} rows per model call"
    )


def cpu_per_call(pool: PoolBackend, calls: int, runs: int) -> float:
    """Best of ``runs``: this process's CPU seconds per lone predict."""
    payload = {"matrix": ROW}
    best = float("inf")
    for _ in range(runs):
        began = time.process_time()
        for _ in range(calls):
            pool.predict(payload)
        best = min(best, (time.process_time() - began) / calls)
    return best


def traced(pool: PoolBackend) -> Counter[str]:
    """The winserve functions one lone predict runs in this thread, with their counts."""
    found: Counter[str] = Counter()

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            module = frame.f_code.co_filename[len(PACKAGE) :]
            found[f"{module}:{frame.f_code.co_qualname}"] += 1

    payload = {"matrix": ROW}
    pool.predict(payload)  # warm
    sys.setprofile(hook)
    try:
        pool.predict(payload)
    finally:
        sys.setprofile(None)
    return found


def measure(name: str, pool: PoolBackend, calls: int, runs: int) -> None:
    pool.start()
    pool.wait_ready(120)
    try:
        for _ in range(200):  # warm: imports, the connection, caches
            pool.predict({"matrix": ROW})
        seconds = cpu_per_call(pool, calls, runs)
        functions = traced(pool)
    finally:
        pool.close()
    modules = sorted({f.split(":")[0] for f in functions})
    print(f"{name}: {seconds * 1e6:.1f} µs CPU per lone call (best of {runs} × {calls})")
    print(
        f"  {sum(functions.values())} calls of {len(functions)} winserve functions in "
        f"{len(modules)} modules: {', '.join(modules)}"
    )
    for function, count in functions.items():
        print(f"    {count} × {function}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--callers", type=int, default=32)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "")
    measure(
        "fake replica", PoolBackend(ModelSpec(), make_replica=make_instant), args.calls, args.runs
    )
    queued(args.callers, args.calls // 20, args.runs)
    if args.real:
        spec = ModelSpec(str(ensure_demo_model()))
        measure("real replica (demo model)", PoolBackend(spec), args.calls // 4, args.runs)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()

"""A model host that holds the GIL or is frozen, and a busy queue: ``python bench/frozen_host.py``.

Against a real server (``python -m winserve``, ``--timeout 1``), measures once each (issue 13):

- a model call that backtracks a regular expression for hours while holding the GIL: the
  caller's wait for its 504, and the time until a normal request is answered again;
- a host frozen with SIGSTOP while idle: the same two times;
- Ctrl+C (SIGINT) with a frozen host: the time until the web process has exited;
- SIGKILL of the web process while its host holds the GIL, and while its host is frozen:
  whether the host is still there 5 s later;
- a model taking 0.3 s a call, 6 clients for 8 s: replica restarts and the statuses seen.

A measure that does not finish within its bound is printed as "never (> N s)".
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import model_hosts, running_server

BOUND = 30.0
HOG = {"a": 777, "b": 1}
NORMAL = {"a": 1, "b": 1}


def _served(url: str) -> bool:
    try:
        return requests.post(f"{url}/predict", json=NORMAL, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _until(condition: Callable[[], bool], bound: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def _fmt(value: float | None, bound: float = BOUND) -> str:
    return f"never (> {bound:g} s)" if value is None else f"{value:.2f} s"


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def hang_then_serve(folder: Path, freeze: bool) -> tuple[float, float | None, str]:
    factory = "tests.models:chaos" if freeze else "tests.models:gil_hog"
    with running_server(["--factory", factory, "--timeout", "1"], cwd=folder) as server:
        started = time.monotonic()
        if freeze:
            os.kill(model_hosts(server.proc.pid)[0].pid, signal.SIGSTOP)
        answer = requests.post(f"{server.url}/predict", json=NORMAL if freeze else HOG, timeout=60)
        to_504 = time.monotonic() - started
        assert answer.status_code == 504, answer.text
        again = _until(lambda: _served(server.url), BOUND)
        if again is None:
            return to_504, again, ""
        health = requests.get(f"{server.url}/health", timeout=5).json()
        return to_504, again, f" (its load {health['replicas'][0]['load_seconds']:.2f} s)"


def ctrl_c_with_frozen_host(folder: Path) -> float | None:
    with running_server(["--factory", "tests.models:chaos"], cwd=folder) as server:
        os.kill(model_hosts(server.proc.pid)[0].pid, signal.SIGSTOP)
        server.proc.send_signal(signal.SIGINT)
        return _until(lambda: server.proc.poll() is not None, 20.0)


def host_left_after_parent_killed(folder: Path, freeze: bool) -> bool:
    args = ["--factory", "tests.models:gil_hog", "--timeout", "60"]
    with running_server(args, cwd=folder) as server:
        host = model_hosts(server.proc.pid)[0]
        if freeze:
            os.kill(host.pid, signal.SIGSTOP)
        else:
            hog = threading.Thread(
                target=lambda: requests.post(f"{server.url}/predict", json=HOG, timeout=30),
                daemon=True,
            )
            hog.start()
            time.sleep(1.0)  # the host is deep in the regular expression now
        server.proc.kill()
        server.proc.wait(10)
        time.sleep(5.0)
        left = _alive(host.pid)
        if left:
            host.kill()
        return left


def restarts_under_load(folder: Path, seconds: float = 8.0) -> tuple[int, dict[int, int]]:
    args = [
        "--factory",
        "tests.models:steady",
        "--timeout",
        "1",
        "--threads",
        "8",
        "--max-batch-rows",
        "1",
    ]
    statuses: collections.Counter[int] = collections.Counter()
    with running_server(args, cwd=folder) as server:
        stop = threading.Event()

        def client() -> None:
            session = requests.Session()
            while not stop.is_set():
                try:
                    status = session.post(f"{server.url}/predict", json=NORMAL, timeout=10)
                    statuses[status.status_code] += 1
                except requests.RequestException:
                    statuses[-1] += 1

        clients = [threading.Thread(target=client) for _ in range(6)]
        for each in clients:
            each.start()
        time.sleep(seconds)
        stop.set()
        for each in clients:
            each.join(15)
        health = requests.get(f"{server.url}/health", timeout=5).json()
        return sum(r["restarts"] for r in health["replicas"]), dict(sorted(statuses.items()))


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix="winserve-frozen-") as name:
        folder = Path(name)
        rows: list[tuple[str, str]] = []
        to_504, again, load = hang_then_serve(folder, freeze=False)
        rows += [("GIL-holding hang → 504", _fmt(to_504))]
        rows += [("… → serving again", _fmt(again) + load)]
        to_504, again, load = hang_then_serve(folder, freeze=True)
        rows += [("SIGSTOPped host → 504", _fmt(to_504))]
        rows += [("… → serving again", _fmt(again) + load)]
        rows.append(
            ("Ctrl+C with a SIGSTOPped host → exited", _fmt(ctrl_c_with_frozen_host(folder), 20))
        )
        for freeze, what in ((False, "holding the GIL"), (True, "SIGSTOPped")):
            left = host_left_after_parent_killed(folder, freeze)
            rows.append((f"host {what} left 5 s after SIGKILL of web", "yes" if left else "no"))
        restarts, statuses = restarts_under_load(folder)
        rows.append(("0.3 s model, timeout 1, 6 clients, 8 s: restarts", str(restarts)))
        rows.append(("… statuses", ", ".join(f"{k}: {v}" for k, v in statuses.items())))
    print("| measure | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

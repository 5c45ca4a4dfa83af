"""A model host that holds the GIL or is frozen, against a real server (issue 13, items 1, 2).

Two ways a host stops answering everything, even multiprocessing's own messages: a model call
that backtracks a regular expression for hours while holding the GIL (``tests.models:gil_hog``
on ``a == 777``: no Python thread of the host runs, not even its parent watchdog), and a host
stopped with SIGSTOP. Either way the caller gets its 504 at the deadline, a new host serves
within its load time + 2 s, Ctrl+C ends winserve within seconds, and a SIGKILL of the web
process takes the host with it. And a busy queue never kills a replica that works normally.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.helpers import running_server, wait_until
from tests.models import GIL_HOG

pytestmark = [pytest.mark.server, pytest.mark.spawn]

TIMEOUT = 1.0
MARGIN = 0.75  # the caller's grace (0.25 s) and a loaded 2-core machine
NORMAL = {"a": 1, "b": 1}
FREEZES = ["gil", "sigstop"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _health(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{url}/health", timeout=5).json()
    return answer


def _hog(url: str) -> None:
    # the server goes away meanwhile: that is what the test does to it
    with contextlib.suppress(requests.RequestException):
        requests.post(f"{url}/predict", json={"a": GIL_HOG, "b": 1}, timeout=120)


def _freeze(url: str, host_pid: int, how: str) -> None:
    """Leave the host unable to answer: deep in a GIL-holding call, or stopped."""
    if how == "gil":
        host = psutil.Process(host_pid)
        before = host.cpu_times().user  # loading the model cost some already
        threading.Thread(target=_hog, args=(url,), daemon=True).start()
        wait_until(lambda: host.cpu_times().user > before + 0.5, 20)
    else:
        os.kill(host_pid, signal.SIGSTOP)


@pytest.mark.parametrize("how", FREEZES)
def test_a_frozen_host_gets_504_at_the_deadline_and_is_replaced(tmp_path: Path, how: str) -> None:
    args = ["--factory", "tests.models:gil_hog", "--timeout", str(TIMEOUT)]
    with running_server(args, cwd=tmp_path) as server:
        old = _health(server.url)["replicas"][0]
        if how == "sigstop":
            os.kill(old["pid"], signal.SIGSTOP)
        started = time.monotonic()
        hung = requests.post(
            f"{server.url}/predict", json={"a": GIL_HOG if how == "gil" else 1, "b": 1}, timeout=30
        )
        waited = time.monotonic() - started
        assert hung.status_code == 504, hung.text
        assert hung.json()["error"]["code"] == "model_timeout"
        assert f"did not answer within {TIMEOUT:g} s" in hung.json()["error"]["message"]
        assert TIMEOUT - 0.05 <= waited <= TIMEOUT + MARGIN, waited
        answered = time.monotonic()

        def served() -> bool:
            return requests.post(f"{server.url}/predict", json=NORMAL, timeout=5).status_code == 200

        wait_until(served, 30, 0.02)
        back = time.monotonic() - answered
        new = _health(server.url)["replicas"][0]
        assert new["pid"] != old["pid"] and new["restarts"] == 1, new
        assert back <= new["load_seconds"] + 2.0, (back, new)
        assert not _alive(old["pid"])
        answer = requests.post(f"{server.url}/predict", json={"a": 2, "b": 1}, timeout=5)
        assert answer.json() == {"predictions": [3.0]}
        print(f"\n{how}: 504 after {waited:.2f} s, serving again {back:.2f} s later")


@pytest.mark.parametrize("how", FREEZES)
def test_ctrl_c_exits_quickly_with_a_frozen_host(tmp_path: Path, how: str) -> None:
    args = ["--factory", "tests.models:gil_hog", "--timeout", "60"]
    with running_server(args, cwd=tmp_path) as server:
        host = _health(server.url)["replicas"][0]["pid"]
        _freeze(server.url, host, how)
        started = time.monotonic()
        assert server.stop(signal.SIGINT, timeout=10) == 0
        took = time.monotonic() - started
        assert took < 5.0, took
        assert server.drain().rstrip().endswith("winserve: stopped.")
        assert not _alive(host)
        print(f"\n{how}: Ctrl+C to exit 0 in {took:.2f} s")


@pytest.mark.parametrize("how", FREEZES)
def test_sigkill_of_the_web_process_takes_a_frozen_host_with_it(tmp_path: Path, how: str) -> None:
    args = ["--factory", "tests.models:gil_hog", "--timeout", "60"]
    with running_server(args, cwd=tmp_path) as server:
        host = _health(server.url)["replicas"][0]["pid"]
        _freeze(server.url, host, how)
        server.proc.kill()
        server.proc.wait(10)
        killed = time.monotonic()
        try:
            wait_until(lambda: not _alive(host), 5.0, 0.01)
        finally:
            if _alive(host):
                psutil.Process(host).kill()
        print(f"\n{how}: host gone {time.monotonic() - killed:.3f} s after the web process")


def test_a_busy_queue_does_not_kill_a_replica_that_works_normally(tmp_path: Path) -> None:
    """0.3 s a call, one request a call (``--max-batch-rows 1``: merged, six requests would
    cost one call), six clients: requests queue up to 1.5 s behind each other. Those that
    cannot make their 1 s deadline get 504 without reaching the model; no call runs past
    the timeout, so the replica is never killed."""
    args = [
        "--factory",
        "tests.models:steady",
        "--timeout",
        str(TIMEOUT),
        "--threads",
        "8",
        "--max-batch-rows",
        "1",
    ]
    log: list[tuple[float, int]] = []
    with running_server(args, cwd=tmp_path) as server:
        stop = threading.Event()

        def client() -> None:
            session = requests.Session()
            while not stop.is_set():
                started = time.monotonic()
                status = session.post(f"{server.url}/predict", json=NORMAL, timeout=10).status_code
                log.append((time.monotonic() - started, status))

        clients = [threading.Thread(target=client) for _ in range(6)]
        for each in clients:
            each.start()
        time.sleep(4.0)
        stop.set()
        for each in clients:
            each.join(15)
        health = _health(server.url)
        assert health["status"] == "ready"
        assert health["replicas"][0]["restarts"] == 0, "\n".join(server.lines)
        statuses = [status for _, status in log]
        assert set(statuses) == {200, 504}, sorted(set(statuses))
        assert max(took for took, _ in log) <= TIMEOUT + MARGIN
        assert "took longer than" not in "\n".join(server.lines)
        print(f"\n{statuses.count(200)} × 200, {statuses.count(504)} × 504, no restart")


def test_a_model_that_cannot_load_is_reported_once(tmp_path: Path) -> None:
    """Every replica's first load failed: winserve exits saying why once, not announcing
    restarts it will never make."""
    args = ["--factory", "tests.models:broken", "--workers", "2"]
    with running_server(args, cwd=tmp_path, ready=False) as server:
        assert server.proc.wait(60) == 1
        output = server.drain()
    assert output.count("this factory always fails") == 1, output
    assert "restarting" not in output, output
    assert "the model could not be loaded" in output

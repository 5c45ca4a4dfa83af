"""How fast winserve gets over failures: ``python bench/recovery.py [--runs N]``.

Against a real server (``python -m winserve``, the chaos test model, ``--timeout 1``), measures
per run: the time a caller waits for its 504 when the model hangs, the time from a SIGKILL of
an idle model host until ``/health`` is ready again with a new host, and the time from Ctrl+C
(SIGINT) to exit code 0 with every host gone. Prints a table of medians and ranges.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import model_hosts, running_server, wait_until


def ready_with_new_host(url: str, old_pid: int) -> bool:
    health = requests.get(f"{url}/health", timeout=5).json()
    return bool(health["status"] == "ready" and health["replicas"][0]["pid"] != old_pid)


def one_run(folder: Path) -> tuple[float, float, float]:
    with running_server(["--factory", "tests.models:chaos", "--timeout", "1"], cwd=folder) as s:
        started = time.monotonic()
        hung = requests.post(f"{s.url}/predict", json={"a": 999, "b": 1}, timeout=10)
        to_504 = time.monotonic() - started
        assert hung.status_code == 504, hung.text
        wait_until(lambda: requests.get(f"{s.url}/health", timeout=5).status_code == 200, 30)
        host = model_hosts(s.proc.pid)[0]
        started = time.monotonic()
        host.send_signal(signal.SIGKILL)
        wait_until(lambda: ready_with_new_host(s.url, host.pid), 30, 0.01)
        recovery = time.monotonic() - started
        started = time.monotonic()
        assert s.stop(signal.SIGINT) == 0
        stop = time.monotonic() - started
        assert not model_hosts(s.proc.pid)
    return to_504, recovery, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="winserve-recovery-") as folder:
        results = [one_run(Path(folder)) for _ in range(runs)]
    labels = [
        "hung model → 504 (timeout 1 s)",
        "SIGKILL of idle host → ready again",
        "Ctrl+C → exit 0, hosts gone",
    ]
    print(f"| measure ({runs} runs) | median s | min s | max s |\n|---|---|---|---|")
    for label, values in zip(labels, zip(*results, strict=True), strict=True):
        print(
            f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

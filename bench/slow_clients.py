"""Normal clients while slow ones trickle: ``python bench/slow_clients.py [--root DIR]``.

Issue 28, finding 3 (slow clients cannot starve the server). Starts winserve (the chaos model,
default settings) from ``--root`` (default: this checkout; give an older tree, e.g. from
``git archive``, to measure before a change), then for each case opens ``--count`` connections
(default 500) that each send one byte of a request every second (half of them header bytes,
half body bytes after full headers) and reconnect at once when closed, from one address
(127.0.0.2) or from 250 (127.0.0.2 … 127.0.0.251; Linux binds all of 127/8). Meanwhile a
normal client posts one row to ``/predict`` every 0.2 s for ``--seconds`` (default 20), each on a
new connection with a 10 s timeout.

Prints one markdown table row per case: normal requests answered, p50 and max latency, slow
connections closed by the server, 408s they read, and the web process's CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import ServerProcess, server_env  # noqa: E402
from tests.slow_clients import Probe, Tricklers  # noqa: E402


def measure(root: Path, addresses: list[str], count: int, seconds: float) -> str:
    command = [sys.executable, "-m", "winserve", "--port", "0", "--no-browser"]
    command += ["--factory", "tests.models:chaos"]
    env = server_env(PYTHONPATH=str(root))
    with tempfile.TemporaryDirectory() as folder:
        server = ServerProcess(command, env, Path(folder))
        try:
            server.wait_ready()
            web = psutil.Process(server.proc.pid)
            port = int(server.url.rsplit(":", 1)[1])
            with Tricklers(port, addresses, count) as slow:
                time.sleep(3)  # all connected and trickling
                cpu = sum(web.cpu_times()[:2])
                start = time.monotonic()
                probe = Probe(server.url)
                probe.run(seconds)
                used = (sum(web.cpu_times()[:2]) - cpu) / (time.monotonic() - start)
            done = sorted(x for x in probe.latencies if x is not None)
            p50 = f"{done[len(done) // 2] * 1000:.0f} ms" if done else "–"
            worst = f"{done[-1] * 1000:.0f} ms" if done else "–"
            late = sum(1 for answer in slow.answers if b" 408 " in answer[:20])
            where = "1 address" if len(addresses) == 1 else f"{len(addresses)} addresses"
            return (
                f"| {count} from {where} | {len(done)} of {len(probe.latencies)} | {p50} | "
                f"{worst} | {slow.closed_by_server} | {late} | {100 * used:.0f}% |"
            )
        finally:
            server.kill_tree()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the winserve tree to serve")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(
        "| slow connections | normal answered | p50 | max | slow closed | 408s | web CPU |\n"
        "|---|---|---|---|---|---|---|"
    )
    for addresses in (["127.0.0.2"], [f"127.0.0.{i}" for i in range(2, 252)]):
        print(measure(args.root.resolve(), addresses, args.count, args.seconds), flush=True)


if __name__ == "__main__":
    main()

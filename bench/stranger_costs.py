"""What a stranger's requests cost the web process: ``python bench/stranger_costs.py [--root DIR]``.

Issue 28, part A (bounded before authorised). Starts winserve (the chaos model, a token set, its
temporary files in a folder of their own) from ``--root`` (default: this checkout; give an
older tree, e.g. from ``git archive``, to measure before a change) and, without the token:

- posts a 20 MB url-encoded form to the open ``/login``: the web process's RSS, idle and peak
  (sampled every 5 ms);
- sends 4 uploads of 50 MB each to ``/jobs`` at once: the peak bytes of the temporary files
  the web process holds open;
- sends 3,500 requests naming made-up models with made-up methods: the size of ``/metrics``.

Prints one markdown table row per measure.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "correct-horse-battery-staple"


def _peak(sample: Callable[[], int], during: Callable[[], object]) -> tuple[int, int]:
    start = sample()
    peak = [start]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], sample())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        during()
    finally:
        stop.set()
        watcher.join(5)
    return start, peak[0]


def _upload(port: int, size: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        try:
            for _ in range(size // len(chunk)):
                conn.sendall(chunk)
            conn.recv(65536)
        except OSError:  # answered and closed before the whole body: what should happen
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the winserve tree to run")
    args = parser.parse_args()
    from tests.helpers import running_server, server_env, spooled_bytes

    with tempfile.TemporaryDirectory() as scratch:
        temp = Path(scratch) / "temp"
        temp.mkdir()
        env = server_env(TMPDIR=str(temp), TEMP=str(temp), TMP=str(temp))
        env["PYTHONPATH"] = str(args.root.resolve())
        command = ["--factory", "tests.models:chaos", "--token", TOKEN]
        with running_server(command, cwd=Path(scratch), env=env) as server:
            url = server.url
            port = int(url.rsplit(":", 1)[1])
            web = psutil.Process(server.proc.pid)
            time.sleep(1)
            body = b"token=x&" + b"a=&" * (7 * 1024 * 1024)
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            status: list[int] = []
            idle, peak = _peak(
                lambda: web.memory_info().rss,
                lambda: status.append(
                    requests.post(f"{url}/login", data=body, headers=form, timeout=300).status_code
                ),
            )
            print("| measure | idle | peak | answer |")
            print("|---|---|---|---|")
            print(
                f"| web RSS, 20 MB form to /login | {idle / 2**20:.0f} MB | "
                f"{peak / 2**20:.0f} MB | {status[0]} |"
            )

            def uploads() -> None:
                threads = [
                    threading.Thread(target=_upload, args=(port, 50 * 2**20)) for _ in range(4)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(300)

            start, most = _peak(lambda: spooled_bytes(web.pid, temp), uploads)
            print(
                f"| temp files held, 4 × 50 MB uploads without the token | "
                f"{start / 2**20:.1f} MB | {most / 2**20:.1f} MB | - |"
            )
            methods = ["GET", "POST", "BREW", "PROPFIND", "X" * 40]
            with requests.Session() as session:
                for n in range(3500):
                    name = f"made-up-{n}-" + "x" * 100
                    session.request(methods[n % 5], f"{url}/models/{name}/predict", timeout=10)
            size = len(
                requests.get(
                    f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300
                ).content
            )
            print(f"| /metrics after 3,500 made-up names | - | {size / 1024:,.0f} KB | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

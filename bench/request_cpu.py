"""CPU time per request, each process apart: ``python bench/request_cpu.py [--requests N]``.

What a request costs, measured so that a busy machine moves it little (issue 29): one client
(this script, another process) sends ``--requests`` single-row POSTs to ``/predict`` one after
the other over one keep-alive connection, and the CPU time each process used meanwhile
(``psutil``: user + system) is divided by the requests. Beside it, the client's wall time per
request (c=1 latency: what a quiet machine turns into req/s; a loaded one inflates it).

Servers, each started afresh for each of ``--runs`` rounds (interleaved, so a drift in the
machine's load falls on all): winserve with the prediction log on (as users run it) and off
(``--no-log``), and the in-process NumPy recipe (``bench/baseline.py numpy``, 8 threads). Model:
bench/run.py's logistic regression (30 columns). Prints each round and the medians, with the
load average before and after. For an A/B of two commits, run this script from a copy of each
(``git archive <commit> | tar -x -C DIR``): it serves the winserve of the tree it is in.

winserve's processes: ``web`` (Flask + waitress, the request path and the log's sender thread),
``host`` (the model host), ``log`` (the prediction log's writer process).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.run import free_port, start, stop, train, wait_ready

WARMUP = 300


def cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def roles(pid: int) -> dict[str, psutil.Process]:
    """The server's processes by role: web, and winserve's host and log writer."""
    root = psutil.Process(pid)
    found = {"web": root}
    for child in root.children(recursive=True):
        try:
            line = " ".join(child.cmdline())
            name = child.name()
        except psutil.NoSuchProcess:
            continue
        if "resource_tracker" in line:
            continue
        found["log" if name == "winserve-log" or "predlog" in line else "host"] = child
    return found


def post_many(port: int, body: bytes, count: int) -> float:
    """Seconds for ``count`` POSTs, one after the other, on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    began = time.perf_counter()
    for _ in range(count):
        conn.request("POST", "/predict", body, headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {answer[:200]!r}")
    seconds = time.perf_counter() - began
    conn.close()
    return seconds


def one_run(server: str, model: Path, body: bytes, count: int) -> dict:
    port = free_port()
    extra: tuple[str, ...] = ("--no-log",) if server == "winserve --no-log" else ()
    proc = start(server, model, port, extra=extra)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}")
        post_many(port, body, WARMUP)
        time.sleep(0.6)  # the log's sender thread ticks every 0.5 s: let it send the warm-up's
        procs = roles(proc.pid)
        before = {role: cpu(p) for role, p in procs.items()}
        seconds = post_many(port, body, count)
        time.sleep(0.6)  # and the writer process write these
        used = {role: cpu(p) - before[role] for role, p in procs.items()}
    finally:
        stop(proc)
    result = {f"{role}_us": round(1e6 * used[role] / count, 1) for role in sorted(used)}
    result["latency_us"] = round(1e6 * seconds / count, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1, help="rows per request (records)")
    parser.add_argument(
        "--servers",
        default="winserve,winserve --no-log,baseline (NumPy)",
        help="comma-separated, of: winserve, winserve --no-log, baseline (NumPy)",
    )
    args = parser.parse_args()
    servers = [s.strip() for s in args.servers.split(",")]
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {s: [] for s in servers}
    with tempfile.TemporaryDirectory(prefix="winserve-cpu-") as folder:
        work = Path(folder)
        model = train(work, quick=True)["logistic regression"]
        row = json.loads((work / "row.json").read_text())
        body = json.dumps(row * args.rows).encode()
        for run in range(args.runs):
            for server in servers if run % 2 == 0 else reversed(servers):
                result = one_run(server, model, body, args.requests)
                results[server].append(result)
                print(f"run {run + 1} {server}: {json.dumps(result)}", flush=True)
    load_after = os.getloadavg()
    print(f"\n{args.requests} requests of {args.rows} row(s) per run, c=1; medians of {args.runs}:")
    for server, runs in results.items():
        keys = runs[0].keys()
        medians = {k: statistics.median(r[k] for r in runs) for k in keys}
        print(f"  {server:<20} " + "  ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    shown = [" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after)]
    print(f"load average (1, 5, 15 min) before: {shown[0]}, after: {shown[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the prediction log costs (issue 26): ``python bench/predlog.py [--runs 3] [--seconds 10]``.

Serves bench/run.py's logistic regression (StandardScaler + LogisticRegression on the
breast-cancer data, 30 columns, single-row JSON bodies) with the log on (``--log``, its file in
a fresh temporary folder) and off (``--no-log``), alternately, ``--runs`` times each, a fresh
server each time, and loads each with wrk at ``--concurrency`` (32). Prints each run's req/s,
p50, p99, the web process's CPU time per request (all its threads: the log's request-path part
and its sender thread), the CPU time per request of the processes it started (the model host,
and with the log on its writer process: the difference on/off is the writer's), and the
entries the log held afterwards (the warm-up's included); then the medians and the ratios
on/off (the target: within 5 %), and the load average before and after (other programs on the
machine move the figures: read them with it).

Needs wrk (Debian package ``wrk``) and psutil (winserve's ``test`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.run import free_port, start, stop, train, wait_ready, wrk


def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and of each process under it."""
    found = {}
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[proc.pid] = times.user + times.system
    return found


def one_run(model: Path, script: Path, log: Path | None, concurrency: int, seconds: float) -> dict:
    port = free_port()
    extra = ("--log", "--log-path", str(log)) if log is not None else ("--no-log",)
    proc = start("winserve", model, port, extra=extra)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url)
        wrk(url, script, 8, 1.0)  # warm every thread and the model
        before = cpu_by_process(proc.pid)
        load = wrk(url, script, concurrency, seconds, proc.pid)
        after = cpu_by_process(proc.pid)
    finally:
        stop(proc)  # SIGTERM: the log's writer flushes on the way out
    web = after.get(proc.pid, 0.0) - before.get(proc.pid, 0.0)
    children = sum(used - before.get(pid, 0.0) for pid, used in after.items() if pid != proc.pid)
    rows = None
    if log is not None:
        conn = sqlite3.connect(log)
        rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        conn.close()
    return {
        "rps": load.rps,
        "p50": load.p50_ms,
        "p99": load.p99_ms,
        "errors": load.errors,
        "web_cpu_ms": round(load.web_cpu_ms, 3),
        # the children's CPU per request: their CPU over the web process's, in the same window,
        # scaled by wrk's web CPU per request (wrk() counts the requests)
        "children_cpu_ms": round(load.web_cpu_ms * children / web, 3) if web > 0 else 0.0,
        "logged": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    before = os.getloadavg()
    results: dict[str, list[dict]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="winserve-predlog-") as folder:
        work = Path(folder)
        models = train(work, quick=True)
        body = (work / "row.json").read_text()
        script = work / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = '
            f'"application/json"\nwrk.body = {json.dumps(body)}\n'
        )
        model = models["logistic regression"]
        for run in range(args.runs):
            # alternate which goes first, so a drift in the machine's load falls on both
            order = ("on", "off") if run % 2 == 0 else ("off", "on")
            for mode in order:
                log = work / f"log-{run}.sqlite" if mode == "on" else None
                result = one_run(model, script, log, args.concurrency, args.seconds)
                results[mode].append(result)
                print(f"run {run + 1} log {mode:>3}: {json.dumps(result)}", flush=True)
    after = os.getloadavg()
    on = statistics.median(r["rps"] for r in results["on"])
    off = statistics.median(r["rps"] for r in results["off"])
    print(f"c={args.concurrency}, {args.seconds:.0f} s per run, {args.runs} runs each")
    print(f"median req/s: log on {on:.0f}, log off {off:.0f}, on/off {on / off:.3f}")
    cpu_on = statistics.median(r["web_cpu_ms"] for r in results["on"])
    cpu_off = statistics.median(r["web_cpu_ms"] for r in results["off"])
    print(
        f"median web-process CPU per request (all its threads): "
        f"log on {cpu_on:.3f} ms, off {cpu_off:.3f} ms, on/off {cpu_on / cpu_off:.3f}"
    )
    kids_on = statistics.median(r["children_cpu_ms"] for r in results["on"])
    kids_off = statistics.median(r["children_cpu_ms"] for r in results["off"])
    print(
        f"median CPU per request of the processes it started (model host; with the log, its "
        f"writer): log on {kids_on:.3f} ms, off {kids_off:.3f} ms; the whole tree on/off "
        f"{(cpu_on + kids_on) / (cpu_off + kids_off):.3f}"
    )
    for mode in ("on", "off"):
        print(
            f"  {mode:>3}: req/s "
            + ", ".join(f"{r['rps']:.0f}" for r in results[mode])
            + "; p50 ms "
            + ", ".join(f"{r['p50']:.1f}" for r in results[mode])
            + "; p99 ms "
            + ", ".join(f"{r['p99']:.1f}" for r in results[mode])
            + "; web CPU ms/req "
            + ", ".join(f"{r['web_cpu_ms']:.3f}" for r in results[mode])
            + "; children CPU ms/req "
            + ", ".join(f"{r['children_cpu_ms']:.3f}" for r in results[mode])
        )
    shown = " ".join(f"{x:.2f}" for x in before), " ".join(f"{x:.2f}" for x in after)
    print(f"load average (1, 5, 15 min) before: {shown[0]}, after: {shown[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Ray backend (issue 17): throughput over 1, 2 and 4 replicas, and what the Ray hop costs.

A real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head and a worker
node, two CPUs each), winserve joining it with ``--backend ray``. The model's cost is latency,
not CPU: each call waits 20 ms without holding the GIL (``tests.models:wait_20ms``), so scaling
shows on a 2-core machine; ``--max-batch-rows 1`` keeps winserve from merging requests into one
call, so each request is one model call and the replicas are what scales.

Prints a table and, with ``--write``, puts it into ``bench/RESULTS.md`` (the section between
this script's markers). ``python bench/ray.py [--seconds 10] [--write]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# run as a script, this file's folder comes first on sys.path, and this file would be "ray"
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.run import free_port, wait_ready, wrk  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN = "<!-- bench/ray.py: begin -->"
END = "<!-- bench/ray.py: end -->"
REPLICAS = (1, 2, 4)
BODY = '[{"a": 1.0, "b": 2.0}]'


def script(folder: Path) -> Path:
    path = folder / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n',
        encoding="utf-8",
    )
    return path


def serve(args: list[str], folder: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "winserve",
        "--factory",
        "tests.models:wait_20ms",
        "--port",
        str(port),
        "--no-browser",
        "--log-level",
        "warning",
        "--max-batch-rows",
        "1",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    ready = wait_ready(proc, url, timeout=300)
    return proc, url, ready


def replica_kill(folder: Path, ray_args: list[str]) -> str:
    """SIGKILL the one Serve replica; how long until a request is answered 200 again."""
    import json
    import signal
    import urllib.error
    import urllib.request

    import psutil

    proc, url, _ = serve([*ray_args, "--workers", "1", "--timeout", "5"], folder)
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=10) as answer:
            app = json.loads(answer.read())["extra"]["ray"]["application"]
        victims = [
            p
            for p in psutil.process_iter(["cmdline"])
            if f"ServeReplica:{app}:" in " ".join(p.info["cmdline"] or [])
        ]
        victims[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        statuses: dict[int, int] = {}
        while time.monotonic() - killed < 120:
            request = urllib.request.Request(
                f"{url}/predict", data=BODY.encode(), headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
            if status == 200:
                break
            statuses[status] = statuses.get(status, 0) + 1
            time.sleep(0.05)
        back = time.monotonic() - killed
    finally:
        stop(proc)
    seen = ", ".join(f"{n}× {code}" for code, n in sorted(statuses.items()))
    return (
        f"SIGKILL of the only Serve replica (`--workers 1`): answered 200 again after "
        f"{back:.1f} s (Serve starts a new replica: a Ray worker, winserve's import, the model "
        f"host's spawn and load); meanwhile {seen} (one request every 50 ms)."
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    os.environ["PYTHONPATH"] = str(ROOT)  # the nodes' workers import tests.models
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lua = script(folder)
        rows = []
        began = time.monotonic()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
        try:
            cluster.add_node(num_cpus=2)
            cluster.wait_for_nodes()
            started = time.monotonic() - began
            ray_args = ["--backend", "ray", "--ray-address", cluster.address, "--ray-cpus", "1"]
            for replicas in REPLICAS:
                proc, url, ready = serve([*ray_args, "--workers", str(replicas)], folder)
                try:
                    wrk(url, lua, 8, 2)  # warm up
                    load = wrk(url, lua, 32, args.seconds, proc.pid)
                    hop = wrk(url, lua, 1, args.seconds, proc.pid)
                finally:
                    stop(proc)
                rows.append(("ray", replicas, ready, load, hop))
                print(f"ray, {replicas} replica(s): {load.rps:.0f} req/s at c=32", flush=True)
            recovery = replica_kill(folder, ray_args)
        finally:
            cluster.shutdown()
        proc, url, ready = serve(["--workers", "1"], folder)
        try:
            wrk(url, lua, 8, 2)
            local_load = wrk(url, lua, 32, args.seconds, proc.pid)
            local_hop = wrk(url, lua, 1, args.seconds, proc.pid)
        finally:
            stop(proc)
    one = rows[0][3].rps
    lines.append(
        f"Two-node Ray cluster on this machine (head + worker, 2 CPUs each, started in "
        f"{started:.0f} s); a model whose every call waits 20 ms without holding the GIL; "
        f"`--max-batch-rows 1`; wrk {args.seconds:g} s per level."
    )
    lines.append("")
    lines.append(
        "| backend | replicas | ready in | req/s c=32 | × 1 replica | p99 c=32 | p50 c=1 "
        "| web CPU ms/req c=32 | errors |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for backend, replicas, ready_s, load, hop in rows:
        lines.append(
            f"| {backend} | {replicas} | {ready_s:.1f} s | {load.rps:.0f} | {load.rps / one:.2f}× "
            f"| {load.p99_ms:.1f} ms | {hop.p50_ms:.1f} ms | {load.web_cpu_ms:.2f} "
            f"| {load.errors + hop.errors} |"
        )
    lines.append(
        f"| local | 1 | {ready:.1f} s | {local_load.rps:.0f} | | {local_load.p99_ms:.1f} ms "
        f"| {local_hop.p50_ms:.1f} ms | {local_load.web_cpu_ms:.2f} "
        f"| {local_load.errors + local_hop.errors} |"
    )
    ray_hop = rows[0][4].p50_ms
    four = next(load.rps for _, replicas, _, load, _ in rows if replicas == 4)
    lines.append("")
    lines.append(f"Load average before the run: {load_before}.")
    lines.append(
        f"The Ray hop at c=1: {ray_hop:.1f} ms p50 against {local_hop.p50_ms:.1f} ms on the local "
        f"backend, i.e. +{ray_hop - local_hop.p50_ms:.1f} ms per call. 4 replicas: "
        f"{four / one:.2f}× one replica (target ≥ 3×: {'met' if four / one >= 3 else 'NOT met'})."
    )
    lines.append("")
    lines.append(recovery)
    table = "\n".join(lines)
    print(table)
    if args.write:
        text = RESULTS.read_text(encoding="utf-8")
        block = f"{BEGIN}\n## Ray backend (`python bench/ray.py`)\n\n{table}\n{END}"
        if BEGIN in text:
            head, rest = text.split(BEGIN, 1)
            text = head + block + rest.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

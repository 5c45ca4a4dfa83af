"""winserve against the usual recipe, side by side: ``python bench/run.py [--quick] [--runs N]``.

Trains the two benchmark models on scikit-learn's bundled breast-cancer data (a StandardScaler +
LogisticRegression pipeline, and RandomForestClassifier(n_estimators=200, random_state=0), both
fitted on a DataFrame), then for each model starts winserve and the in-process baseline
(``bench/baseline.py``: Flask under waitress, model in a global) one after the other, loads each
with wrk at c = 1, 8, 32 with single-row JSON bodies, and reports req/s, p50, p99, errors, peak
RSS of the whole process tree, time to ready, and winserve's ratio to the baseline. Beside
them, LitServe with batching (``bench/litserve_server.py``; skipped, and said so, when litserve
is not installed: ``pip install winserve[bench]``). Every server is started afresh for each of
``--runs`` runs (3 by default; the runs interleave, so a drift in the machine's load falls on
every server): the table shows each level's medians, the spread of its req/s between runs
((max − min) / median) and each run's req/s. For winserve it also shows the rows per model call
at each level, from ``winserve_batch_rows`` in ``/metrics`` read before and after the level
(issue 29: the batches a run forms explain its throughput at c=32). It also
measures the proportional memory (PSS) of ``--workers 1`` vs ``--workers 2`` on a model whose
arrays dominate its size (KNeighborsClassifier, uncompressed file, memory-mapped by winserve).

Writes ``bench/RESULTS.md`` (``--quick``: ``bench/out/RESULTS-quick.md``, seconds, for CI;
``--only TEXT``: some cases alone, e.g. five runs of winserve's logistic regression, into
``bench/out/RESULTS-only.md``; ``--out`` elsewhere).
Needs wrk (Debian package ``wrk``) and psutil (in winserve's ``test`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LEVELS = (1, 8, 32)
RUNS = 3  # issue 29: the same code gave 1,954 and 921 req/s at c=32; one run proves nothing
KEPT = "<!-- below: figures from the other bench/ scripts; bench/run.py keeps them -->"


BASELINE_THREADS = 8  # waitress threads of the hand-written servers (waitress' default is 4)
WINSERVE_THREADS = 32  # winserve's default (settings.threads)
SERVERS = ("baseline (DataFrame)", "baseline (NumPy)", "winserve")
LITSERVE = "LitServe (batching)"
# LitServe's batcher: up to 32 requests per model call (every client at c=32), waiting at most
# 5 ms for them. A lone client waits the whole 5 ms for company that never comes, so LitServe at
# c=1 is held under ~1 / (5 ms + a call): --litserve-batch and --litserve-wait-ms change them.
LITSERVE_BATCH, LITSERVE_TIMEOUT = 32, 0.005
# Web CPU per request of round 1's winserve (a86859f), logistic regression, single rows: the
# figure issue 14 asks to halve (measured with this script's "web CPU ms/req" in round 2)
ROUND1_WEB_CPU_MS = 2.27


@dataclass
class Load:
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    web_cpu_ms: float = 0.0  # CPU time of the web process (not its model hosts) per request
    # model calls by rows per call during this level (winserve: bucket bound -> calls), and the
    # rows those calls had in all; empty for servers without /metrics
    calls_by_rows: dict[float, float] = field(default_factory=dict)
    rows: float = 0.0
    # the runs this load summarises (summarise(): one entry per run, in run order)
    rps_runs: list[float] = field(default_factory=list)
    rows_per_call_runs: list[float] = field(default_factory=list)

    @property
    def spread(self) -> float:
        """(max − min) / median of the runs' req/s; 0 for a single run."""
        runs = self.rps_runs
        return (max(runs) - min(runs)) / self.rps if len(runs) > 1 and self.rps else 0.0


@dataclass
class Run:
    server: str
    model: str
    ready_s: float
    idle_rss_mb: float
    peak_rss_mb: float
    loads: list[Load]


def train(folder: Path, quick: bool) -> dict[str, Path]:
    import joblib
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target
    paths = {
        "logistic regression": folder / "logistic.joblib",
        "random forest (200 trees)": folder / "forest.joblib",
        "knn": folder / "knn.joblib",
    }
    joblib.dump(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, y),
        paths["logistic regression"],
    )
    joblib.dump(
        RandomForestClassifier(n_estimators=200, random_state=0).fit(x, y),
        paths["random forest (200 trees)"],
    )
    rows = 20_000 if quick else 200_000
    rng = np.random.default_rng(0)
    import pandas as pd

    # 100 columns: the fitted rows (160 MB at 200k rows) dominate the replica's memory
    big = pd.DataFrame(rng.normal(size=(rows, 100)), columns=[f"f{i}" for i in range(100)])
    knn = KNeighborsClassifier(algorithm="brute").fit(big, rng.integers(0, 2, rows))
    joblib.dump(knn, paths["knn"])  # uncompressed: winserve memory-maps its arrays
    (folder / "row.json").write_text(json.dumps(x.iloc[[0]].to_dict(orient="records")))
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


litserve_batch = [LITSERVE_BATCH, LITSERVE_TIMEOUT]  # main() sets them from the command line


def start(
    server: str, model: Path, port: int, workers: int = 1, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if server.startswith("winserve"):
        command = [
            sys.executable,
            "-m",
            "winserve",
            str(model),
            "--port",
            str(port),
            "--no-browser",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
            # the prediction log is on by default (issue 26): measured as users run it, but
            # written beside the model in the run's temporary folder, not the user's data folder
            "--log-path",
            str(model.with_name(f"{model.stem}-{port}.predictions.sqlite")),
            *extra,
        ]
    elif server == LITSERVE:
        command = [
            sys.executable,
            str(HERE / "litserve_server.py"),
            str(model),
            str(port),
            str(litserve_batch[0]),
            str(litserve_batch[1]),
        ]
    else:
        mode = "numpy" if "NumPy" in server else "dataframe"
        command = [
            sys.executable,
            str(HERE / "baseline.py"),
            str(model),
            str(port),
            str(BASELINE_THREADS),
            mode,
        ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                raw = response.read()
                body = {"status": "ready"} if raw == b"ok" else json.loads(raw)  # LitServe: ok
                if response.status == 200 and body.get("status") == "ready":
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"not ready within {timeout} s")


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_mb(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def tree_pss_mb(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += getattr(proc.memory_full_info(), "pss", 0)
    return total / 2**20


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def cpu_seconds(pid: int) -> float:
    """CPU time so far of the process ``pid`` alone (the web process, not its model hosts)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def wrk(url: str, script: Path, concurrency: int, seconds: float, pid: int = 0) -> Load:
    command = [
        "wrk",
        f"-t{min(2, concurrency)}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"{url}/predict",
    ]
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    used = cpu_seconds(pid) - before if pid else 0.0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), "
        r"timeout (\d+)",
        out,
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Load(concurrency, rps, p50, p99, errors, 1000 * used / total if total else 0.0)


def batch_rows(url: str) -> tuple[dict[float, float], float]:
    """winserve's ``winserve_batch_rows`` histogram now, every model's series added up: the
    cumulative count of model calls per bucket bound (rows per call ≤ bound), and the rows of
    all calls (the histogram's sum)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return parse_batch_rows(response.read().decode())


def parse_batch_rows(text: str) -> tuple[dict[float, float], float]:
    """``batch_rows`` from the Prometheus text of ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    rows = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "winserve_batch_rows":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                rows += sample.value
    return buckets, rows


def calls_between(
    before: tuple[dict[float, float], float], after: tuple[dict[float, float], float]
) -> tuple[dict[float, float], float]:
    """The model calls made between two readings of ``batch_rows``, per bucket (not
    cumulative: calls with rows in (previous bound, bound]), and their rows."""
    calls: dict[float, float] = {}
    below = 0.0
    for bound in sorted(after[0]):
        upto = after[0][bound] - before[0].get(bound, 0.0)
        calls[bound] = upto - below
        below = upto
    return calls, after[1] - before[1]


def measure(
    server: str, name: str, model: Path, script: Path, seconds: float, extra: tuple[str, ...] = ()
) -> Run:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(server, model, port, extra=extra)
    ours = server.startswith("winserve")
    try:
        ready = wait_ready(proc, url)
        wrk(url, script, 8, min(1.0, seconds))  # warm up every thread
        time.sleep(0.5)
        idle = tree_rss_mb(proc.pid)
        sampler = PeakRss(proc.pid)
        loads = []
        for concurrency in LEVELS:
            before = batch_rows(url) if ours else None
            load = wrk(url, script, concurrency, seconds, proc.pid)
            if before is not None:
                load.calls_by_rows, load.rows = calls_between(before, batch_rows(url))
            loads.append(load)
        peak = max(sampler.stop(), idle)
    finally:
        stop(proc)
    return Run(server, name, ready, idle, peak, loads)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server and every process it started (LitServe's workers, winserve's hosts)."""
    children = tree(proc.pid)[1:]
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)


def summarise(runs: list[Run]) -> list[Run]:
    """One Run per (server, model), in first-seen order, from every run of it: each level's
    medians (req/s, p50, p99, web CPU), its errors added up, its model calls added up, and each
    run's req/s and rows per call kept in run order; ready time median, peak RSS the highest."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.server, run.model), []).append(run)
    summary = []
    for (server, model), group in groups.items():
        loads = []
        for level in LEVELS:
            each = [x for r in group for x in r.loads if x.concurrency == level]
            if not each:
                continue
            calls: dict[float, float] = {}
            for x in each:
                for bound, n in x.calls_by_rows.items():
                    calls[bound] = calls.get(bound, 0.0) + n
            loads.append(
                Load(
                    level,
                    statistics.median(x.rps for x in each),
                    statistics.median(x.p50_ms for x in each),
                    statistics.median(x.p99_ms for x in each),
                    sum(x.errors for x in each),
                    statistics.median(x.web_cpu_ms for x in each),
                    calls,
                    sum(x.rows for x in each),
                    [x.rps for x in each],
                    [_per_call(x) for x in each if x.calls_by_rows],
                )
            )
        summary.append(
            Run(
                server,
                model,
                statistics.median(r.ready_s for r in group),
                statistics.median(r.idle_rss_mb for r in group),
                max(r.peak_rss_mb for r in group),
                loads,
            )
        )
    return summary


def _per_call(load: Load) -> float:
    calls = sum(load.calls_by_rows.values())
    return load.rows / calls if calls else 0.0


def distribution(calls_by_rows: dict[float, float]) -> str:
    """Model calls by rows per call, as shares of all calls: ``1: 40% · 2: 10% · 3-4: 50%``."""
    total = sum(calls_by_rows.values())
    if not total:
        return ""
    parts, low = [], 1
    for bound in sorted(calls_by_rows):
        n = calls_by_rows[bound]
        high = "+" if bound == float("inf") else f"{bound:.0f}"
        label = f"{low}" if str(low) == high else f"{low}-{high}".replace("-+", "+")
        if n / total >= 0.005:
            parts.append(f"{label}: {100 * n / total:.0f}%")
        low = int(bound) + 1 if bound != float("inf") else low
    return " · ".join(parts)


def memory_of_workers(model: Path) -> dict[int, float]:
    result = {}
    for workers in (1, 2):
        port = free_port()
        proc = start("winserve", model, port, workers)
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}", timeout=300)
            time.sleep(1.0)
            result[workers] = tree_pss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    return result


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference else ""


def report(
    runs: list[Run], memory: dict[int, float], seconds: float, quick: bool, repeats: int
) -> str:
    command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])  # as it was run
    litserve = (
        f"LitServe {_litserve_version()} with batching: a LitAPI (decode_request: the record "
        "as a NumPy row; predict: one model call per batch), up to "
        f"{litserve_batch[0]:g} requests per call, waiting at most "
        f"{litserve_batch[1] * 1000:g} ms "
        "for them, its inference worker in its own process. "
        if any(r.server == LITSERVE for r in runs)
        else "LitServe: not installed, skipped. "
    )
    lines = [
        "# winserve benchmark" + (" (--quick: not for citing)" if quick else ""),
        "",
        f"`{command}` on {platform.node()}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, wrk on the same machine, "
        f"{seconds:g} s per level, single-row JSON bodies, {repeats} run(s) of every server "
        f"(load average {_load_average()} at the end). Baselines: Flask under waitress "
        f"({BASELINE_THREADS} threads), the model in a global, one predict per request, the "
        "rows as a pandas DataFrame built from the records (the tutorials' recipe) or as a "
        "NumPy array in the model's column order (the fastest hand-written one). winserve: "
        f"defaults ({WINSERVE_THREADS} threads, 1 replica, batching on), console log at "
        f"warning. {litserve}Web CPU: CPU time of the web process alone (not its model hosts) "
        "per request. req/s, p50, p99 and web CPU are medians of the runs, errors their sum; "
        "spread: (max − min) / median of the runs' req/s. Rows per call: winserve's model calls "
        "during the level (winserve_batch_rows in /metrics), the mean of each run, and the "
        "share of all runs' calls by rows per call.",
        "",
        "| model | server | threads | c | req/s | p50 ms | p99 ms | errors | web CPU ms/req | "
        "spread | req/s per run | rows per call, per run | calls by rows per call | "
        "× DataFrame req/s | × NumPy req/s | × NumPy p99 | × LitServe req/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r.server, r.model): r for r in runs}
    for run in runs:
        frame = by_key.get(("baseline (DataFrame)", run.model))
        numpy = by_key.get(("baseline (NumPy)", run.model))
        lit = by_key.get((LITSERVE, run.model))
        threads: int | str = BASELINE_THREADS
        if run.server.startswith("winserve"):
            threads = WINSERVE_THREADS
        elif run.server == LITSERVE:
            threads = "async"
        for load in run.loads:
            cells = ["", "", "", ""]
            if run.server.startswith("winserve") and frame and numpy:
                df = next(b for b in frame.loads if b.concurrency == load.concurrency)
                np_ = next(b for b in numpy.loads if b.concurrency == load.concurrency)
                cells[:3] = [
                    _ratio(load.rps, df.rps),
                    _ratio(load.rps, np_.rps),
                    _ratio(load.p99_ms, np_.p99_ms),
                ]
            if run.server.startswith("winserve") and lit:
                other = next(b for b in lit.loads if b.concurrency == load.concurrency)
                cells[3] = _ratio(load.rps, other.rps)
            per_run = " / ".join(f"{x:.0f}" for x in load.rps_runs)
            # LitServe's HTTP servers are processes of their own: its main process's CPU is not
            # its web CPU
            web_cpu = "n/a" if run.server == LITSERVE else f"{load.web_cpu_ms:.2f}"
            per_call = " / ".join(f"{x:.1f}" for x in load.rows_per_call_runs)
            lines.append(
                f"| {run.model} | {run.server} | {threads} | {load.concurrency} | "
                f"{load.rps:.0f} | {load.p50_ms:.2f} | {load.p99_ms:.1f} | {load.errors} | "
                f"{web_cpu} | {100 * load.spread:.0f}% | {per_run} | {per_call} | "
                f"{distribution(load.calls_by_rows)} | {' | '.join(cells)} |"
            )
    lines += ["", *targets(runs)]
    lines += [
        "",
        "| model | server | ready in s | idle RSS MB (tree) | peak RSS MB (tree) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.server} | {r.ready_s:.2f} | {r.idle_rss_mb:.0f} | {r.peak_rss_mb:.0f} |"
        for r in runs
    ]
    if memory:
        ratio = memory[2] / memory[1]
        lines += [
            "",
            "Memory of replicas (KNeighborsClassifier fitted on 200k × 100 (--quick: "
            "20k), uncompressed file, memory-mapped arrays), proportional set size of the "
            "whole process tree after load:",
            "",
            "| workers | PSS MB |",
            "|---|---|",
            f"| 1 | {memory[1]:.0f} |",
            f"| 2 | {memory[2]:.0f} (×{ratio:.2f}) |",
        ]
    return "\n".join(lines) + "\n"


def _litserve_version() -> str:
    try:
        from importlib.metadata import version

        return version("litserve")
    except ImportError:  # importlib.metadata.PackageNotFoundError is one
        return ""


def _load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # Windows has no load average
        return "n/a"


def _load(runs: list[Run], server: str, model: str, concurrency: int) -> Load | None:
    for run in runs:
        if run.server == server and run.model == model:
            return next((x for x in run.loads if x.concurrency == concurrency), None)
    return None


def targets(runs: list[Run]) -> list[str]:
    """Issue 14's targets, each with its figures and whether this run met it."""
    checks: list[tuple[str, float, float, bool]] = []  # what, figure, bound, met
    lr, forest = "logistic regression", "random forest (200 trees)"
    for model, concurrency, bound in ((lr, 1, 1.0), (lr, 32, 1.5), (forest, 32, 15.0)):
        ours = _load(runs, "winserve", model, concurrency)
        base = _load(runs, "baseline (NumPy)", model, concurrency)
        if ours and base and base.rps:
            ratio = ours.rps / base.rps
            what = f"{model}, c={concurrency}: req/s ≥ {bound:g}× the NumPy baseline"
            checks.append((what, ratio, bound, ratio >= bound))
    ours, base = _load(runs, "winserve", lr, 32), _load(runs, "baseline (NumPy)", lr, 32)
    if ours and base:
        what = f"{lr}, c=32: p99 ≤ the NumPy baseline's ({base.p99_ms:.1f} ms)"
        checks.append((what, ours.p99_ms, base.p99_ms, ours.p99_ms <= base.p99_ms))
    errors = sum(x.errors for r in runs for x in r.loads)
    checks.append(("no errors at any level", float(errors), 0.0, errors == 0))
    bound = ROUND1_WEB_CPU_MS / 2
    for concurrency in (1, 32):
        ours = _load(runs, "winserve", lr, concurrency)
        if ours:
            what = (
                f"{lr}, c={concurrency}: web CPU ms/request ≤ half of round 1's "
                f"{ROUND1_WEB_CPU_MS:g} ms ({bound:.2f})"
            )
            checks.append((what, ours.web_cpu_ms, bound, ours.web_cpu_ms <= bound))
    lines = ["| target | this run | met |", "|---|---|---|"]
    lines += [
        f"| {what} | {figure:.2f} | {'yes' if met else 'NO'} |" for what, figure, _, met in checks
    ]
    return lines


# --- issue 16: ONNX, an .onnx file and a forest with --compile onnx --------------------------
# Kept apart from the cases above (issue 14 tunes those): these add winserve runs to the same
# table, compared with the same baselines, and their own targets under it.
ONNX_FILE_SERVER = "winserve (.onnx file)"
COMPILED_SERVER = "winserve --compile onnx"
LR, FOREST = "logistic regression", "random forest (200 trees)"


def onnx_file(folder: Path, models: dict[str, Path]) -> Path:
    """The benchmark's logistic regression as an .onnx file (skl2onnx), the column names in
    the graph's metadata so the same JSON rows are accepted."""
    import joblib
    import numpy as np
    from skl2onnx import to_onnx

    model = joblib.load(models[LR])
    names = [str(n) for n in model.feature_names_in_]
    graph = to_onnx(model, np.zeros((1, len(names)), dtype=np.float32))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "feature_names", json.dumps(names)
    path = folder / "logistic.onnx"
    path.write_bytes(graph.SerializeToString())
    return path


def onnx_runs(
    folder: Path,
    models: dict[str, Path],
    script: Path,
    seconds: float,
    quick: bool,
    wanted: Callable[[str, str], bool] = lambda model, server: True,
) -> list[Run]:
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError:
        print("bench: onnxruntime or skl2onnx missing, ONNX cases skipped", file=sys.stderr)
        return []
    cases: list[tuple[str, str, Path, tuple[str, ...]]] = [
        (ONNX_FILE_SERVER, LR, onnx_file(folder, models), ())
    ]
    if not quick:
        cases.append((COMPILED_SERVER, FOREST, models[FOREST], ("--compile", "onnx")))
    runs = []
    for server, name, path, extra in cases:
        if not wanted(name, server):
            continue
        print(f"bench: {name}, {server} …", file=sys.stderr, flush=True)
        runs.append(measure(server, name, path, script, seconds, extra))
    return runs


def onnx_targets(runs: list[Run]) -> list[str]:
    """Issue 16's targets: the compiled forest against both baselines, the .onnx file
    against the same model served from joblib."""
    checks: list[tuple[str, float, bool]] = []
    for concurrency, bound in ((1, 10.0), (32, 40.0)):
        ours = _load(runs, COMPILED_SERVER, FOREST, concurrency)
        for baseline in ("baseline (DataFrame)", "baseline (NumPy)"):
            base = _load(runs, baseline, FOREST, concurrency)
            if ours and base and base.rps:
                ratio = ours.rps / base.rps
                what = f"forest --compile onnx, c={concurrency}: req/s ≥ {bound:g}× {baseline}"
                checks.append((what, ratio, ratio >= bound))
    ours, joblib_lr = _load(runs, ONNX_FILE_SERVER, LR, 32), _load(runs, "winserve", LR, 32)
    if ours and joblib_lr and joblib_lr.rps:
        ratio = ours.rps / joblib_lr.rps
        checks.append(
            (".onnx logistic regression, c=32: req/s ≥ 1× the joblib file's", ratio, ratio >= 1)
        )
    if not checks:
        return []
    lines = ["", "Issue 16 (ONNX):", "", "| target | this run | met |", "|---|---|---|"]
    lines += [
        f"| {what} | {figure:.2f} | {'yes' if met else 'NO'} |" for what, figure, met in checks
    ]
    return lines


# --- end of issue 16's cases -------------------------------------------------------------------


def issue29_targets(runs: list[Run]) -> list[str]:
    """Issue 29's targets, on the medians of the runs; those whose servers did not run are
    left out."""
    checks: list[tuple[str, float, bool]] = []
    numpy, ours = "baseline (NumPy)", "winserve"

    def ratio_check(what: str, a: Load | None, b: Load | None, bound: float) -> None:
        if a and b and b.rps:
            checks.append((what, a.rps / b.rps, a.rps / b.rps >= bound))

    for model, level, bound in ((LR, 32, 1.5), (LR, 1, 0.85), (FOREST, 1, 0.95)):
        ratio_check(
            f"{model}, c={level}: req/s ≥ {bound:g}× the NumPy baseline",
            _load(runs, ours, model, level),
            _load(runs, numpy, model, level),
            bound,
        )
    lr32 = _load(runs, ours, LR, 32)
    if lr32 and len(lr32.rps_runs) > 1:
        what = f"{LR}, c=32: spread of req/s between runs < 15 %"
        checks.append((what, lr32.spread, lr32.spread < 0.15))
    for run in runs:
        if run.server.startswith("winserve"):
            ratio_check(
                f"{run.server}, {run.model}: req/s at c=32 ≥ at c=1",
                _load(runs, run.server, run.model, 32),
                _load(runs, run.server, run.model, 1),
                1.0,
            )
    ratio_check(
        f"{FOREST}, c=32: req/s ≥ {LITSERVE}'s",
        _load(runs, ours, FOREST, 32),
        _load(runs, LITSERVE, FOREST, 32),
        1.0,
    )
    ratio_check(
        f"forest --compile onnx, c=32: req/s ≥ 0.8× winserve's {LR}",
        _load(runs, COMPILED_SERVER, FOREST, 32),
        lr32,
        0.8,
    )
    if lr32:
        what = f"{LR}, c=32: web CPU ms/request ≤ 0.6"
        checks.append((what, lr32.web_cpu_ms, lr32.web_cpu_ms <= 0.6))
        base = _load(runs, numpy, LR, 32)
        if base:
            what = f"{LR}, c=32: p99 ms ≤ the NumPy baseline's ({base.p99_ms:.1f})"
            checks.append((what, lr32.p99_ms, lr32.p99_ms <= base.p99_ms))
    lines = ["", "Issue 29 (medians of the runs):", "", "| target | this run | met |"]
    lines += ["|---|---|---|"]
    lines += [
        f"| {what} | {figure:.2f} | {'yes' if met else 'NO'} |" for what, figure, met in checks
    ]
    return lines


def selected(only: list[str], model: str, server: str) -> bool:
    """Whether ``--only`` keeps this case: no --only, or a text found in 'model, server'
    (case-insensitive)."""
    case = f"{model}, {server}".lower()
    return not only or any(text.lower() in case for text in only)


def litserve_installed() -> bool:
    try:
        import litserve  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: checks it runs")
    parser.add_argument("--seconds", type=float, help="seconds per load level (default 10)")
    parser.add_argument(
        "--runs",
        type=int,
        help=f"runs of every server, each started afresh (default {RUNS}; --quick: 1)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the results here (default bench/RESULTS.md; --quick: "
        "bench/out/RESULTS-quick.md)",
    )
    parser.add_argument(
        "--litserve-batch",
        type=int,
        default=LITSERVE_BATCH,
        help=f"LitServe's max_batch_size (default {LITSERVE_BATCH})",
    )
    parser.add_argument(
        "--litserve-wait-ms",
        type=float,
        default=LITSERVE_TIMEOUT * 1000,
        help=f"LitServe's batch_timeout in ms (default {LITSERVE_TIMEOUT * 1000:g})",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="only the cases whose 'model, server' contains TEXT (any of them when repeated; "
        "e.g. --only 'logistic regression, winserve'); no memory figures, and the results go "
        "to bench/out/RESULTS-only.md unless --out says where",
    )
    args = parser.parse_args()
    only = args.only or []

    def wanted(model: str, server: str) -> bool:
        return selected(only, model, server)

    litserve_batch[:] = [args.litserve_batch, args.litserve_wait_ms / 1000]
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    repeats = args.runs or (1 if args.quick else RUNS)  # --quick checks it runs, in seconds
    servers = SERVERS
    if litserve_installed():
        servers += (LITSERVE,)
    else:
        print("bench: litserve not installed: skipped (pip install litserve)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="winserve-bench-") as folder:
        work = Path(folder)
        models = train(work, args.quick)
        body = (work / "row.json").read_text()
        script = work / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = '
            f'"application/json"\nwrk.body = {json.dumps(body)}\n'
        )
        runs = []
        names = ["logistic regression", "random forest (200 trees)"]
        for repeat in range(repeats):
            for name in names[:1] if args.quick else names:
                for server in servers:
                    if not wanted(name, server):
                        continue
                    print(
                        f"bench: run {repeat + 1}/{repeats}: {name}, {server} …",
                        file=sys.stderr,
                        flush=True,
                    )
                    runs.append(measure(server, name, models[name], script, seconds))
            runs += onnx_runs(work, models, script, seconds, args.quick, wanted)  # issue 16
        memory = {}
        if not only:
            print("bench: memory of 1 vs 2 replicas …", file=sys.stderr, flush=True)
            memory = memory_of_workers(models["knn"])
    summary = summarise(runs)
    text = report(summary, memory, seconds, args.quick, repeats)
    text += "\n".join(onnx_targets(summary) + issue29_targets(summary)) + "\n"
    target = args.out or HERE / (
        "out/RESULTS-quick.md" if args.quick else "out/RESULTS-only.md" if only else "RESULTS.md"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and KEPT in (old := target.read_text(encoding="utf-8")):
        text += "\n" + old[old.index(KEPT) :]  # the other benchmarks' figures stay
    target.write_text(text, encoding="utf-8")
    print(text)
    print(f"bench: written to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

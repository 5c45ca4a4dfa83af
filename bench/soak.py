"""Issue 28's soak, rerunnable: ``python bench/soak.py [--minutes 10]``.

Trains a small DataFrame pipeline (a category column one-hot encoded, two numbers, a logistic
regression), serves a folder of two models (``python -m winserve FOLDER --port 0 --workers 2
--no-browser``, on 127.0.0.1) and drives it for ``--minutes`` from threads, each request with a
timeout:

- valid predictions, single rows and batches, on every protocol (``/models/<n>/predict``,
  ``/models/<n>/invocations``, OIP ``/v2/models/<n>/infer``);
- invalid rows (wrong types, unknown columns, a 200,000-character column name): a 4xx each;
- hostile requests (made-up paths and methods, a 2 MB login form) and a few dozen connections
  that trickle a request a byte a second (``tests/slow_clients.py``'s ``Tricklers``);
- ``/health`` and ``/metrics``;
- CSV jobs through the page (form token, upload, status, download), every row checked scored
  exactly once by its id.

Meanwhile one model file is replaced by a retrained one every ``--replace-seconds`` (10;
``os.replace``, as a retrain script does) and a model host is killed (SIGKILL) three times, the
second during a CSV job. A valid prediction may get 503 only inside a kill's restart window (from
the kill until that model's health is ready again with a new host, plus 2 s); they are counted
apart. Every 5 s the web process's RSS, open handles, threads and model processes are sampled.
At the end the server gets SIGINT (Ctrl+C) and must exit 0 within 10 s leaving no model process.

Prints a table and exits 1 if a check fails. Runs on Linux and macOS (the tests' real-server
helpers, SIGINT to a child; on Windows ``send_signal(SIGINT)`` is not Ctrl+C). Figures of a run:
``bench/RESULTS.md``, "Soak".
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import ServerProcess, csrf_token, model_hosts, server_env  # noqa: E402
from tests.slow_clients import Tricklers, can_bind  # noqa: E402

CITIES = ["paris", "berlin", "rome", "oslo", "lisbon"]
MODELS = ("alpha", "beta")  # alpha is retrained and replaced; hosts of both are killed
WORKERS = 2
TIMEOUT = 30.0  # every request's
GRACE = 2.0  # seconds after a kill's restart in which a 503 is still the kill's
SMALL_JOB_ROWS, BIG_JOB_ROWS = 2_000, 60_000
LOGIN = "hostile: login form"


def write_model(path: Path, seed: int) -> None:
    """A DataFrame pipeline on x1, x2 (numbers) and city (a category), fitted on ``seed``'s
    rows; written elsewhere first, then moved into place as a retrain script does."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=500),
            "x2": rng.normal(size=500),
            "city": rng.choice(CITIES, size=500),
        }
    )
    target = (frame["x1"] + frame["x2"] * 0.5 + (frame["city"] == "rome") > 0).astype(int)
    columns = ColumnTransformer(
        [
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("numbers", StandardScaler(), ["x1", "x2"]),
        ]
    )
    model = make_pipeline(columns, LogisticRegression()).fit(frame, target)
    staging = path.with_suffix(".tmp")
    joblib.dump(model, staging)
    os.replace(staging, path)


def rows(count: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {"x1": rng.uniform(-3, 3), "x2": rng.uniform(-3, 3), "city": rng.choice(CITIES)}
        for _ in range(count)
    ]


@dataclass
class Tally:
    """Answers by request kind and status (-1: no answer within the timeout or a broken
    connection), with the time each came; the restart windows of the kills."""

    answers: dict[str, list[tuple[float, int]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    wrong: list[str] = field(default_factory=list)  # a 200 whose body was not the answer
    windows: list[list[float]] = field(default_factory=list)  # [kill, ready + GRACE]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int) -> None:
        with self.lock:
            self.answers[kind].append((time.monotonic(), status))

    def in_window(self, when: float) -> bool:
        return any(start <= when <= end for start, end in self.windows)


class Soak:
    def __init__(self, url: str, folder: Path, pid: int, seconds: float) -> None:
        self.url, self.folder, self.pid = url, folder, pid
        self.start = time.monotonic()
        self.end = self.start + seconds
        self.seconds = seconds
        self.stop = threading.Event()
        self.tally = Tally()
        self.samples: list[tuple[float, float, int, int, int]] = []
        self.metrics_sizes: list[int] = []
        self.jobs: list[tuple[str, int, str]] = []  # model, rows, "ok" or what was wrong
        self.replaces = 0
        self.kills: list[tuple[str, float, str]] = []  # model, seconds to ready, when
        self.kill_lock = threading.Lock()
        self.hosts_seen: set[int] = set()

    # -- load --------------------------------------------------------------------------------

    def valid(self, seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        while not self.stop.is_set():
            name = rng.choice(MODELS)
            batch = rows(rng.choice([1, 1, 1, 5, 50]), rng)
            protocol = rng.choice(["predict", "invocations", "oip"])
            try:
                if protocol == "predict":
                    body: Any = batch[0] if len(batch) == 1 and rng.random() < 0.5 else batch
                    answer = session.post(
                        f"{self.url}/models/{name}/predict", json=body, timeout=TIMEOUT
                    )
                    got = answer.json()["predictions"] if answer.ok else []
                elif protocol == "invocations":
                    answer = session.post(
                        f"{self.url}/models/{name}/invocations",
                        json={"dataframe_records": batch},
                        timeout=TIMEOUT,
                    )
                    got = answer.json()["predictions"] if answer.ok else []
                else:
                    inputs = [
                        {
                            "name": column,
                            "shape": [len(batch)],
                            "datatype": "BYTES" if column == "city" else "FP64",
                            "data": [row[column] for row in batch],
                        }
                        for column in ("x1", "x2", "city")
                    ]
                    answer = session.post(
                        f"{self.url}/v2/models/{name}/infer",
                        json={"inputs": inputs},
                        timeout=TIMEOUT,
                    )
                    got = answer.json()["outputs"][0]["data"] if answer.ok else []
                status = answer.status_code
                # one class label (0 or 1) per row, whichever version answered
                if answer.ok and (len(got) != len(batch) or set(got) - {0, 1}):
                    self.tally.wrong.append(f"{protocol}: {len(batch)} rows, answers {got[:5]}")
            except (requests.RequestException, ValueError, KeyError):
                status = -1
            kind = f"valid {protocol} ({'batch' if len(batch) > 1 else 'single'})"
            if status == 503:  # judged at the end, when every kill's window is known
                self.tally.add("valid 503", status)
            self.tally.add(kind, status)

    def invalid(self, seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        huge = "c" * 200_000
        while not self.stop.is_set():
            name = rng.choice(MODELS)
            row: dict[str, Any] = rows(1, rng)[0]
            case = rng.choice(["wrong type", "unknown column", "huge name", "oip wrong type"])
            try:
                if case == "oip wrong type":
                    inputs = [
                        {"name": c, "shape": [1], "datatype": "BYTES", "data": ["not a number"]}
                        for c in ("x1", "x2", "city")
                    ]
                    answer = session.post(
                        f"{self.url}/v2/models/{name}/infer",
                        json={"inputs": inputs},
                        timeout=TIMEOUT,
                    )
                else:
                    if case == "wrong type":
                        # not true: a number column takes it as 1, as pandas reads it (#22)
                        row["x1"] = rng.choice(["abc", [1, 2], {"a": 1}, "1,5 kg"])
                    elif case == "unknown column":
                        row["nope"] = 1.0
                    else:
                        row[huge] = 1.0
                    answer = session.post(
                        f"{self.url}/models/{name}/predict", json=[row], timeout=TIMEOUT
                    )
                status = answer.status_code
                if case == "huge name" and len(answer.content) > 20_000:
                    self.tally.wrong.append(f"a {len(answer.content)}-byte error echoed a name")
            except requests.RequestException:
                status = -1
            self.tally.add(f"invalid: {case}", status)

    def hostile(self, seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        form = {"password": "a" * 2_000_000}
        while not self.stop.is_set():
            case = rng.choice(["made-up path", "made-up model", "made-up method", "login form"])
            try:
                if case == "made-up path":
                    # each segment starts with a letter: "/." or "/a/.." would be "/", the
                    # page, as the client removes dot segments (the first run counted a 200)
                    segments = [
                        "n" + "".join(rng.choices("abcxyz._-~", k=rng.randint(0, 40)))
                        for _ in range(rng.randint(1, 8))
                    ]
                    path = "/" + "/".join(segments)
                    answer = session.get(self.url + path, timeout=TIMEOUT)
                elif case == "made-up model":
                    made_up = "m" + str(rng.randint(0, 10**9)) * rng.randint(1, 50)
                    answer = session.post(
                        f"{self.url}/models/{made_up}/predict", json=[{}], timeout=TIMEOUT
                    )
                elif case == "made-up method":
                    method = rng.choice(["BREW", "PROPFIND", "DELETE", "PUT", "TRACE"])
                    path = rng.choice(["/health", f"/models/{rng.choice(MODELS)}/predict", "/"])
                    answer = session.request(method, self.url + path, timeout=TIMEOUT)
                else:
                    answer = requests.post(self.url + "/login", data=form, timeout=TIMEOUT)
                status = answer.status_code
            except requests.RequestException:
                # a 2 MB form refused before it is read: the server may close the connection
                # while we still send, before we read its 413 (counted as 0, a refusal)
                status = 0 if case == "login form" else -1
            self.tally.add(f"hostile: {case}", status)
            time.sleep(0.02)

    def observe(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            for path in ("/health", "/metrics"):
                try:
                    answer = session.get(self.url + path, timeout=TIMEOUT)
                    status = answer.status_code
                    if path == "/metrics" and answer.ok:
                        self.metrics_sizes.append(len(answer.content))
                except requests.RequestException:
                    status = -1
                self.tally.add(path, status)
            self.stop.wait(0.5)

    # -- CSV jobs ----------------------------------------------------------------------------

    def job(self, session: requests.Session, name: str, count: int, kill: bool) -> str:
        """One CSV file through the page; "ok" when every id comes back once, scored."""
        rng = random.Random(count)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "x1", "x2", "city"])
        for index, row in enumerate(rows(count, rng)):
            writer.writerow([index, row["x1"], row["x2"], row["city"]])
        base = f"{self.url}/models/{name}"
        token = csrf_token(session.get(base + "/", timeout=TIMEOUT).text)
        sent = session.post(
            base + "/jobs",
            data={"csrf_token": token},
            files={"file": ("rows.csv", buffer.getvalue().encode(), "text/csv")},
            headers={"Origin": self.url},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        if sent.status_code != 303:
            return f"upload answered {sent.status_code}: {sent.text[:200]}"
        where = self.url + sent.headers["Location"]
        killed = False
        deadline = time.monotonic() + 300
        while True:
            status = session.get(where + "/status", timeout=TIMEOUT).json()
            if kill and not killed and status["state"] == "running":
                killed = self.kill(name, "during a CSV job")
            if status["state"] in ("done", "failed"):
                break
            if time.monotonic() > deadline:
                return f"still {status['state']} after 300 s"
            time.sleep(0.1)
        if kill and not killed:
            return "the job ended before a host could be killed: make it bigger"
        if status["state"] != "done":
            return f"job {status['state']}: {status}"
        result = session.get(where + "/result.csv", timeout=120)
        # utf-8-sig: the result starts with a byte-order mark, for Excel
        table = list(csv.DictReader(io.StringIO(result.content.decode("utf-8-sig"))))
        ids = collections.Counter(int(line["id"]) for line in table)
        if sorted(ids) != list(range(count)) or max(ids.values()) != 1:
            return f"{len(table)} result rows for {count} ids, {len(ids)} distinct"
        unscored = [r for r in table if not r["prediction"] or r.get("error")]
        if unscored:
            return f"{len(unscored)} rows without a prediction: {unscored[0]}"
        return "ok"

    def jobs_loop(self) -> None:
        session = requests.Session()
        turn = 0
        kill_at: float | None = self.start + self.seconds * 0.5
        while not self.stop.is_set():
            name = MODELS[turn % 2]
            turn += 1
            kill = kill_at is not None and time.monotonic() > kill_at
            count = BIG_JOB_ROWS if kill else SMALL_JOB_ROWS
            try:
                outcome = self.job(session, name, count, kill)
            except (requests.RequestException, ValueError, KeyError, AssertionError) as exc:
                outcome = f"{type(exc).__name__}: {exc}"[:300]
            self.jobs.append((name, count, outcome))
            if kill:
                kill_at = None

    # -- disturbances ------------------------------------------------------------------------

    def health_of(self, name: str) -> dict[str, Any]:
        answer = requests.get(f"{self.url}/models/{name}/health", timeout=TIMEOUT)
        return dict(answer.json())

    def kill(self, name: str, when: str) -> bool:
        """SIGKILL one host of ``name``; wait until its health is ready with a new host."""
        with self.kill_lock:
            try:
                pids = [r["pid"] for r in self.health_of(name)["replicas"] if r.get("pid")]
            except (requests.RequestException, ValueError, KeyError):
                return False
            if not pids:
                return False
            victim = pids[0]
            started = time.monotonic()
            window = [started, float("inf")]
            self.tally.windows.append(window)
            try:
                psutil.Process(victim).kill()
            except psutil.Error:
                self.tally.windows.remove(window)
                return False
            ready = float("nan")
            while time.monotonic() < started + 120:
                try:
                    health = self.health_of(name)
                    now = [r.get("pid") for r in health["replicas"]]
                    if health["status"] == "ready" and victim not in now and all(now):
                        ready = time.monotonic() - started
                        break
                except (requests.RequestException, ValueError, KeyError):
                    pass
                time.sleep(0.05)
            window[1] = time.monotonic() + GRACE
            self.kills.append((name, ready, when))
            return True

    def killer(self) -> None:
        """Kills at a quarter and three quarters of the run (the middle one is the job's)."""
        for fraction, name in ((0.25, "beta"), (0.75, "alpha")):
            if self.stop.wait(max(0.0, self.start + self.seconds * fraction - time.monotonic())):
                return
            self.kill(name, "under load")

    def replacer(self, every: float) -> None:
        seed = 1
        staging = self.folder.parent / "retrained"
        staging.mkdir(exist_ok=True)
        while not self.stop.wait(every):
            seed += 1
            write_model(staging / "alpha.joblib", seed)
            os.replace(staging / "alpha.joblib", self.folder / "alpha.joblib")
            self.replaces += 1

    def sample(self) -> None:
        """The web process's RSS, open handles (fds; handles on Windows), threads, and the
        number of model processes now."""
        web = psutil.Process(self.pid)
        hosts = model_hosts(self.pid)
        self.hosts_seen.update(h.pid for h in hosts)
        with web.oneshot():
            handles = web.num_fds() if hasattr(web, "num_fds") else web.num_handles()
            rss = web.memory_info().rss / 2**20
            self.samples.append(
                (time.monotonic() - self.start, rss, handles, web.num_threads(), len(hosts))
            )

    def sampler(self) -> None:
        while True:
            self.sample()
            if self.stop.wait(5.0):
                return


def table(soak: Soak, slow: Tricklers, exit_code: int | None, exit_s: float, left: int) -> int:
    failures: list[str] = []
    tally = soak.tally
    print(
        f"\n## Soak: {soak.seconds / 60:g} minutes, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg()) if hasattr(os, 'getloadavg') else '?'}"
    )
    print("\n| requests | answers | by status |\n|---|---|---|")
    total = 0
    for kind in sorted(tally.answers):
        if kind == "valid 503":
            continue
        statuses = [s for _, s in tally.answers[kind]]
        total += len(statuses)
        counts = dict(sorted(collections.Counter(statuses).items()))
        print(f"| {kind} | {len(statuses):,} | {counts} |")
        if any(s == 500 for s in statuses):
            failures.append(f"{kind}: a 500")
        if kind.startswith("valid"):
            bad = [s for s in statuses if s not in (200, 503)]
            if bad:
                failures.append(f"{kind}: {collections.Counter(bad)}")
        elif kind.startswith(("invalid", "hostile")):
            bad = [s for s in statuses if not 400 <= s < 500 and (s, kind) != (0, LOGIN)]
            if bad:
                failures.append(f"{kind}: not a 4xx: {collections.Counter(bad)}")
        elif kind == "/metrics":
            if any(s != 200 for s in statuses):
                failures.append(f"/metrics: {collections.Counter(statuses)}")
        elif kind == "/health":
            late = [t for t, s in tally.answers[kind] if s != 200 and not tally.in_window(t)]
            if late:
                failures.append(f"/health: {len(late)} not 200 outside a kill's window")
    unavailable = [t for t, _ in tally.answers["valid 503"]]
    in_window = sum(1 for t in unavailable if tally.in_window(t))
    print(
        f"| all | {total:,} | valid 503s inside a kill's restart window: {in_window}, "
        f"outside: {len(unavailable) - in_window} |"
    )
    if len(unavailable) > in_window:
        failures.append(f"{len(unavailable) - in_window} valid predictions got 503 outside a kill")
    if tally.wrong:
        failures.append(f"{len(tally.wrong)} wrong answers, e.g. {tally.wrong[0]}")
    ok_jobs = sum(1 for *_, outcome in soak.jobs if outcome == "ok")
    rows_done = sum(count for _, count, outcome in soak.jobs if outcome == "ok")
    print(
        f"\nCSV jobs: {ok_jobs} of {len(soak.jobs)} with every row scored exactly once "
        f"({rows_done:,} rows)"
    )
    bad_jobs = [(name, count, outcome) for name, count, outcome in soak.jobs if outcome != "ok"]
    if bad_jobs:
        name, count, outcome = bad_jobs[0]
        failures.append(
            f"{len(bad_jobs)} CSV jobs failed, first on {name} ({count} rows): {outcome}"
        )
    print(f"Hot replaces of alpha.joblib: {soak.replaces}")
    for name, ready, when in soak.kills:
        print(f"Host of {name} killed {when}: ready again with a new host in {ready:.1f} s")
        if ready != ready:  # NaN: never ready again
            failures.append(f"{name} never ready again after a kill")
    if len(soak.kills) != 3:
        failures.append(f"{len(soak.kills)} kills instead of 3")
    print(
        f"Slow connections: {slow.count} trickling, {slow.connects} connects, "
        f"{slow.closed_by_server} closed by the server"
    )
    sizes = soak.metrics_sizes
    if sizes:
        print(f"/metrics size: first {sizes[0]:,} B, last {sizes[-1]:,} B, max {max(sizes):,} B")
        if max(sizes) > 100_000:
            failures.append(f"/metrics grew to {max(sizes):,} bytes")
    samples = soak.samples
    print("\n| web process (every 5 s) | first | last | max |\n|---|---|---|---|")
    labels = ("RSS MB", "open handles", "threads", "model processes")
    for i, label in enumerate(labels, start=1):
        values = [s[i] for s in samples]
        print(f"| {label} | {values[0]:.0f} | {values[-1]:.0f} | {max(values):.0f} |")
    # flat: the last sample against the first taken under full load (the second)
    base = samples[1] if len(samples) > 2 else samples[0]
    last = samples[-1]
    if last[2] > base[2] + 64:
        failures.append(f"open handles grew from {base[2]} to {last[2]}")
    if last[3] > base[3] + 16:
        failures.append(f"threads grew from {base[3]} to {last[3]}")
    if last[1] > base[1] + 200:
        failures.append(f"RSS grew from {base[1]:.0f} to {last[1]:.0f} MB")
    print(f"\nCtrl+C: exit code {exit_code} in {exit_s:.1f} s, model processes left: {left}")
    if exit_code != 0 or exit_s > 10:
        failures.append(f"Ctrl+C: exit code {exit_code} after {exit_s:.1f} s")
    if left:
        failures.append(f"{left} model processes left after exit")
    print("\nchecks: " + ("all passed" if not failures else "FAILED"))
    for failure in failures:
        print(f"- {failure}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4, help="threads of valid predictions")
    parser.add_argument("--slow", type=int, default=36, help="trickling connections")
    parser.add_argument("--replace-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="winserve-soak-") as name:
        tmp = Path(name)
        folder = tmp / "models"
        folder.mkdir()
        for model in MODELS:
            write_model(folder / f"{model}.joblib", 0 if model == "beta" else 1)
        command = [sys.executable, "-m", "winserve", str(folder), "--port", "0"]
        command += ["--workers", str(WORKERS), "--no-browser"]
        # its own cache (jobs, model copies), so the sweep at start touches nothing else
        server = ServerProcess(command, server_env(XDG_CACHE_HOME=str(tmp / "cache")), tmp)
        try:
            server.wait_ready(120)
            url = server.url.replace("localhost", "127.0.0.1")
            port = int(url.rsplit(":", 1)[1])
            soak = Soak(url, folder, server.proc.pid, args.minutes * 60)
            addresses = [a for a in (f"127.0.0.{i}" for i in range(2, 8)) if can_bind(a)]
            workers = [
                *(threading.Thread(target=soak.valid, args=(i,)) for i in range(args.clients)),
                threading.Thread(target=soak.invalid, args=(100,)),
                threading.Thread(target=soak.hostile, args=(200,)),
                threading.Thread(target=soak.observe),
                threading.Thread(target=soak.jobs_loop),
                threading.Thread(target=soak.killer),
                threading.Thread(target=soak.replacer, args=(args.replace_seconds,)),
                threading.Thread(target=soak.sampler),
            ]
            with Tricklers(port, addresses or ["127.0.0.1"], args.slow) as slow:
                for worker in workers:
                    worker.daemon = True
                    worker.start()
                while not soak.stop.wait(max(0.0, min(30.0, soak.end - time.monotonic()))):
                    if time.monotonic() >= soak.end:
                        break
                    done = sum(len(a) for a in soak.tally.answers.values())
                    elapsed = time.monotonic() - soak.start
                    print(f"{elapsed:5.0f} s: {done:,} answers", file=sys.stderr, flush=True)
                soak.stop.set()
                for worker in workers:
                    worker.join(TIMEOUT + 300)
            soak.sample()  # the last: after the load and the trickling stopped
            soak.hosts_seen.update(h.pid for h in model_hosts(server.proc.pid))
            started = time.monotonic()
            server.proc.send_signal(signal.SIGINT)
            try:
                code: int | None = server.proc.wait(10)
            except Exception:
                code = None
            exit_s = time.monotonic() - started
            time.sleep(0.5)
            left = sum(1 for pid in soak.hosts_seen if psutil.pid_exists(pid) and _alive(pid))
            return table(soak, slow, code, exit_s, left)
        finally:
            server.kill_tree()


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


if __name__ == "__main__":
    sys.exit(main())

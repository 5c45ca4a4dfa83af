"""Helpers for tests that run real servers and real processes; every wait has a deadline."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    import pandas as pd

    from winserve.backends.base import Backend
    from winserve.model_info import ModelSpec

ROOT = Path(__file__).resolve().parent.parent
# the hidden field every form of the page carries (web/ui.py); a POST without it gets 400
CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_token(page: str) -> str:
    """The CSRF token of a page's forms, from the page's HTML."""
    found = CSRF_FIELD.search(page)
    assert found, "the page has no csrf_token field"
    return found.group(1)


# the prediction log's writer process names itself so on Linux (winserve.predlog.process.NAME)
LOG_WRITER = "winserve-log"


def helper_process(proc: psutil.Process) -> bool:
    """multiprocessing's resource tracker, or the prediction log's writer (issue 26, named so
    on Linux): helpers that exit with their parent, not hosts."""
    try:
        return proc.name() == LOG_WRITER or "resource_tracker" in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return True


def model_hosts(pid: int | None = None) -> list[psutil.Process]:
    """Live descendants of ``pid`` (default: this process), helpers excluded."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and not helper_process(child):
                alive.append(child)
        except psutil.Error:  # gone, or a zombie, while we looked
            pass
    return alive


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def page_job(session: Any, url: str, name: str, data: bytes) -> tuple[dict[str, Any], bytes]:
    """A file scored through a real server's page (its form, as a browser sends it): the
    job's final status and its result's bytes (``session``: a ``requests.Session``)."""
    token = csrf_token(session.get(url + "/", timeout=30).text)
    answer = session.post(
        url + "/jobs",
        data={"csrf_token": token},
        files={"file": (name, data, "text/csv")},
        headers={"Origin": url},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303, answer.text
    job = url + answer.headers["Location"]
    status = job_ended(session, f"{job}/status")
    return status, session.get(f"{job}/result.csv", timeout=30).content


def job_ended(
    client: Any,
    status_url: str,
    timeout: float = 60,
    headers: dict[str, str] | None = None,
    states: tuple[str, ...] = ("done", "failed"),
) -> dict[str, Any]:
    """The status of the scoring job at ``status_url`` once its state is one of ``states``,
    asked through ``client``: Flask's test client, a ``requests.Session`` or ``requests``."""
    flask = hasattr(client, "application")

    def ended() -> dict[str, Any] | None:
        if flask:
            found: dict[str, Any] = client.get(status_url, headers=headers).json
        else:
            found = client.get(status_url, headers=headers, timeout=30).json()
        return found if found["state"] in states else None

    status: dict[str, Any] = wait_until(ended, timeout)
    return status


def bench_script(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def at_once(backend: Backend, payloads: list[dict[str, Any]], timeout: float = 20) -> list[Any]:
    """Each payload as its own ``predict`` on ``backend``, from threads released together;
    each answer's predictions, or the error it raised, by position."""
    results: list[Any] = [None] * len(payloads)
    gate = threading.Barrier(len(payloads))

    def call(i: int) -> None:
        gate.wait(timeout)
        try:
            results[i] = backend.predict(payloads[i]).predictions
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a caller still waits after {timeout} s"
    return results


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINSERVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ServerProcess:
    """``python -m winserve`` in a subprocess; its console is collected line by line."""

    def __init__(
        self, command: list[str], env: dict[str, str], cwd: Path, new_session: bool = False
    ) -> None:
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            start_new_session=new_session,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float) -> str:
        end = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if predicate(line):
                    return line
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no such line within {timeout} s; output:\n" + "\n".join(self.lines)
                )
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                if predicate(""):
                    return ""
                raise AssertionError(
                    f"server exited ({self.proc.wait(5)}); output:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)

    def wait_ready(self, timeout: float = 60) -> str:
        self.wait_for_line(lambda s: s.startswith("Press Ctrl+C"), timeout)
        line = next(s for s in self.lines if s.strip().startswith("open "))
        self.url = line.split()[-1].rstrip("/")
        return self.url

    def drain(self, timeout: float = 5) -> str:
        """Everything printed until the process closed its output."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_tree(self) -> None:
        for child in model_hosts(self.proc.pid):
            child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def winserve_check(model: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m winserve check MODEL`` from the model's folder; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "winserve", "check", str(model)],
        cwd=model.parent,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def running_server(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, ready: bool = True
) -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "winserve", "--port", "0", "--no-browser", *args]
    server = ServerProcess(command, env or server_env(), cwd)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.kill_tree()


# test clients whose apps own a CSV scoring folder; conftest's close_job_folders closes them
# after each test
JOB_CLIENTS: list[Any] = []
JOBS_EXTENSION = "winserve.scoring.jobs"  # where create_app keeps the app's JobManager


def jobs_client(model: str | ModelSpec = "tests.models:chaos", **settings: Any) -> Any:
    """``local_client`` of ``model`` (a factory such as ``tests.models:chaos``, or a
    ``ModelSpec``) for one test: its app's scoring folder goes when the test ends, as it does
    when winserve stops (conftest's ``close_job_folders``)."""
    from winserve.model_info import ModelSpec

    spec = ModelSpec(factory=model) if isinstance(model, str) else model
    client = local_client(spec, **settings)
    JOB_CLIENTS.append(client)
    return client


def close_jobs(app: Any) -> None:
    """Close the scoring folder of ``app`` (a Flask app, or a test client of one), as winserve
    does when it stops: for a client that lives longer than one test (a module's fixture)."""
    app = getattr(app, "application", app)
    app.extensions[JOBS_EXTENSION].close()


def local_client(spec: Any, **settings: Any) -> Any:
    """Flask's test client on the app with the model in this process, loaded (or failed)."""
    from winserve.backends.local import LocalBackend
    from winserve.errors import ModelLoadError
    from winserve.settings import Settings
    from winserve.web import create_app

    backend = LocalBackend(spec)
    backend.start()
    with contextlib.suppress(ModelLoadError):  # a test of a failed load looks at what follows
        backend.wait_ready(60)
    return create_app(Settings(**settings), backend).test_client()


@contextmanager
def page_on_another_port(body: bytes) -> Iterator[str]:
    """A page of another site (another port of this host) serving ``body`` as HTML: what a
    hostile page open in the same browser would be. Yields its URL."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def free_port() -> int:
    """A port nothing listens on now (for a program that cannot be told to bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON records, a missing value as null."""
    loaded: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return loaded


def spooled_bytes(pid: int, folder: Path) -> int:
    """Bytes in the files under ``folder`` that process ``pid`` holds open, counted through
    /proc (Linux): waitress spools a body to an unnamed temporary file (O_TMPFILE), which no
    listing of the folder shows."""
    total = 0
    fds = Path(f"/proc/{pid}/fd")
    for fd in list(fds.iterdir()) if fds.exists() else []:
        with contextlib.suppress(OSError):  # closed while we looked
            if os.readlink(fd).startswith(str(folder)):
                total += fd.stat().st_size
    return total


EXPLAINED_TOLERANCE = 1e-9  # exact enumeration: the contributions add up to rounding


def check_explanations(model: Any, frame: pd.DataFrame, explanations: list[Any]) -> None:
    """``explanations`` (one per row of ``frame``, as /predict?explain=true answers) name the
    user's columns and the class ``model`` predicts, start from a baseline and add up to that
    class's probability, which is the model's own."""
    import pytest

    probabilities = model.predict_proba(frame)
    predicted = model.predict(frame)
    classes = list(model.classes_)
    assert len(explanations) == len(frame)
    for i, found in enumerate(explanations):
        assert list(found["contributions"]) == list(frame.columns)  # the user's columns
        assert found["class"] == predicted[i]
        expected = probabilities[i, classes.index(predicted[i])]
        assert found["output"] == pytest.approx(expected, abs=EXPLAINED_TOLERANCE)
        total = found["baseline"] + sum(found["contributions"].values())
        assert total == pytest.approx(found["output"], abs=EXPLAINED_TOLERANCE)

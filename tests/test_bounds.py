"""Bounded before authorised (issue 28, part A; DESIGN decision 17), against a real server.

A stranger (no token, or a logged-in colleague's browser on another page) sends what costs the
server the most: each test measures that cost on the web process (RSS, temp files, /metrics
size) and ends with a normal request answered in time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.helpers import ServerProcess, running_server, server_env

pytestmark = [pytest.mark.server, pytest.mark.spawn]

TOKEN = "correct-horse-battery-staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-temp")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, temp_folder: Path) -> Iterator[ServerProcess]:
    """The chaos model with a token; the server's temporary files in a folder of its own."""
    folder = tmp_path_factory.mktemp("bounds")
    env = server_env(TMPDIR=str(temp_folder), TEMP=str(temp_folder), TMP=str(temp_folder))
    args = ["--factory", "tests.models:chaos", "--token", TOKEN]
    with running_server(args, cwd=folder, env=env) as running:
        yield running


def _answers_normally(url: str) -> None:
    started = time.monotonic()
    response = requests.post(f"{url}/predict", json=[{"a": 1, "b": 2}], headers=BEARER, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [3.0]
    assert time.monotonic() - started < 5


class PeakMemory:
    """The highest RSS of a process while the block runs, sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.idle = self.process.memory_info().rss
        self.peak = self.idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def grew_mb(self) -> float:
        return (self.peak - self.idle) / (1024 * 1024)


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_a_form_bomb_on_the_login_page_costs_little(guarded: ServerProcess) -> None:
    """Finding 1: a 20 MB url-encoded body on the open /login cost ~905 MB to parse."""
    body = b"token=x&" + b"a=&" * (7 * 1024 * 1024)  # 21 MB of tiny fields
    with PeakMemory(guarded.proc.pid) as memory:
        response = requests.post(f"{guarded.url}/login", data=body, headers=FORM, timeout=60)
        # sent in chunks, without a length: bounded while it streams
        chunked = requests.post(
            f"{guarded.url}/login",
            data=(body[i : i + 65536] for i in range(0, len(body), 65536)),
            headers=FORM,
            timeout=60,
        )
    assert response.status_code == 413 and chunked.status_code == 413, chunked.text
    assert "8,192 bytes" in response.json()["error"]["message"]
    assert memory.grew_mb < 50, f"the web process grew {memory.grew_mb:.0f} MB"
    # the login form itself still works
    good = requests.post(
        f"{guarded.url}/login",
        data={"token": TOKEN, "next": "/"},
        allow_redirects=False,
        timeout=10,
    )
    assert good.status_code == 303
    _answers_normally(guarded.url)


def test_a_big_upload_without_the_token_is_refused_before_it_is_spooled(
    guarded: ServerProcess, temp_folder: Path
) -> None:
    """Finding 7: eight unauthenticated connections held 1.5 GB of temporary files."""
    before = _folder_bytes(temp_folder)
    grown: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            grown.append(_folder_bytes(temp_folder) - before)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        size = 90 * 1024 * 1024
        port = int(guarded.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=x\r\n"
                + f"Content-Length: {size}\r\n\r\n".encode()
            )
            sent = 0
            chunk = b"x" * 65536
            answer = b""
            conn.settimeout(0.5)
            while sent < 8 * 1024 * 1024:  # it answers before the body is in, whole
                try:
                    conn.sendall(chunk)
                    sent += len(chunk)
                except OSError:
                    break
                try:
                    answer += conn.recv(65536)
                except TimeoutError:
                    continue
                if b"\r\n\r\n" in answer:
                    break
            conn.settimeout(10)
            while b"\r\n\r\n" not in answer:
                more = conn.recv(65536)
                if not more:
                    break
                answer += more
        # a token sent with a JSON body that is too big for the route: 413, nothing spooled
        big = requests.post(
            f"{guarded.url}/predict",
            data=b"[" + b"1," * (11 * 1024 * 1024) + b"1]",
            headers={**BEARER, "Content-Type": "application/json"},
            timeout=60,
        )
        stranger = requests.post(
            f"{guarded.url}/predict",
            data=b"[" + b"1," * (5 * 1024 * 1024) + b"1]",
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
    finally:
        stop.set()
        watcher.join(5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert sent < size
    assert big.status_code == 413 and "max_body_mb" in big.json()["error"]["message"]
    assert stranger.status_code == 401
    assert max(grown, default=0) < 1024 * 1024, f"temp files grew {max(grown)} bytes"
    _answers_normally(guarded.url)

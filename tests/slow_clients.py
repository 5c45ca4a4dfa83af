"""Slow clients for the tests of issue 28 (finding 3): connections that trickle a request.

``Tricklers`` keeps ``count`` connections open from the given source addresses, each sending one
byte of its request (a header line, or after full headers a body byte) every ``interval``
seconds, and reconnecting at once when the server closes it, as an attacker would. ``Probe``
sends normal requests, each on a fresh connection, and records how long each took.
``LongCallModel`` (factory ``long_call``) answers a chosen row in 20 s: a long prediction.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

BODY_LENGTH = 1_000_000  # a body announced in full, then sent a byte at a time


def can_bind(address: str) -> bool:
    """127.0.0.2 … are loopback on Linux; elsewhere they may need an alias."""
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


class Tricklers:
    def __init__(self, port: int, addresses: list[str], count: int, interval: float = 1.0) -> None:
        self.port = port
        self.addresses = itertools.cycle(addresses)
        self.count = count
        self.interval = interval
        self.sockets: list[socket.socket | None] = [None] * count
        self.bodies = [i % 2 == 1 for i in range(count)]  # half trickle headers, half bodies
        self.connects = 0
        self.closed_by_server = 0
        self.answers: list[bytes] = []  # the first bytes of what the server wrote before closing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tricklers", daemon=True)

    def _connect(self, index: int) -> socket.socket | None:
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.bind((next(self.addresses), 0))
            sock.connect(("127.0.0.1", self.port))
            start = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            if self.bodies[index]:
                start += (
                    f"Content-Type: application/json\r\nContent-Length: {BODY_LENGTH}\r\n\r\n"
                ).encode()
            sock.sendall(start)
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        self.connects += 1
        return sock

    def _poke(self, index: int, sock: socket.socket) -> bool:
        """One more byte; False once the server has closed (or answered) the connection."""
        try:
            data = sock.recv(256)
        except BlockingIOError:
            data = None
        except OSError:
            return False
        if data is not None:  # an answer (a 408) or the end of the connection
            if data:
                self.answers.append(data[:64])
            return False
        try:
            sock.send(b"[" if self.bodies[index] else b"X")
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            for index in range(self.count):
                if self._stop.is_set():
                    return
                sock = self.sockets[index]
                if sock is not None and not self._poke(index, sock):
                    sock.close()
                    self.closed_by_server += 1
                    sock = None
                if sock is None:
                    self.sockets[index] = self._connect(index)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - start)))

    def open_count(self) -> int:
        return sum(1 for sock in self.sockets if sock is not None)

    def __enter__(self) -> Tricklers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self.sockets:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


@dataclass
class Probe:
    """Normal requests, each on a new connection; latencies in seconds (None: failed)."""

    url: str
    latencies: list[float | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self, seconds: float, pause: float = 0.2, timeout: float = 10.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.monotonic()
            try:
                answer = requests.post(
                    f"{self.url}/predict",
                    json=[{"a": 1, "b": 2}],
                    timeout=timeout,
                    headers={"Connection": "close"},
                )
                ok = answer.status_code == 200 and answer.json()["predictions"] == [3.0]
                self.latencies.append(time.monotonic() - start if ok else None)
                if not ok:
                    self.errors.append(f"{answer.status_code} {answer.text[:200]}")
            except requests.RequestException as exc:
                self.latencies.append(None)
                self.errors.append(type(exc).__name__)
            time.sleep(pause)

    def summary(self) -> str:
        done = sorted(x for x in self.latencies if x is not None)
        if not done:
            return f"{len(self.latencies)} requests, none answered ({self.errors[:3]})"
        p50 = done[len(done) // 2]
        return (
            f"{len(self.latencies)} requests, {len(done)} answered, "
            f"p50 {p50 * 1000:.0f} ms, max {done[-1] * 1000:.0f} ms, failures {self.errors[:3]}"
        )


class LongCallModel:
    """Adds its columns; a row with ``a == 20`` takes 20 s (a long prediction, not a hang)."""

    feature_names_in_ = np.array(["a", "b"], dtype=object)
    n_features_in_ = 2

    def predict(self, frame: Any) -> np.ndarray:
        a = np.asarray(frame["a"], dtype=float)
        if LONG_CALL in a:
            time.sleep(LONG_CALL)
        return a + np.asarray(frame["b"], dtype=float)


LONG_CALL = 20.0


def long_call() -> LongCallModel:
    return LongCallModel()

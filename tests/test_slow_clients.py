"""Slow clients cannot starve the server (issue 28, finding 3), against a real server.

Before: 120 connections trickling a header line or a body byte now and then held all of
waitress's 100 slots and every normal request timed out. Now each request must arrive in time
(``header_timeout``, ``min_upload_rate_kb``), one address holds at most
``max_connections_per_address`` connections, and a full server closes its slowest reader to
let a new client in. Each flood ends with normal requests answered within 2 s; a long upload
at a fair rate and a 20 s prediction are not cut. Slow clients come from 127.0.0.2 … (Linux
binds the whole 127/8), so the per-address cap alone cannot hide the problem.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.helpers import ServerProcess, running_server, wait_until
from tests.slow_clients import LONG_CALL, Probe, Tricklers, can_bind

pytestmark = [
    pytest.mark.server,
    pytest.mark.spawn,
    pytest.mark.skipif(not can_bind("127.0.0.2"), reason="127.0.0.2 is not a local address here"),
]

ANSWERED_WITHIN = 2.0  # seconds: every normal request during a flood (idle: ~10 ms)
QUICK = 2.0  # header_timeout of the quick server


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default bounds: 400 connections, 64 per address, headers in 10 s, bodies ≥ 10 KB/s."""
    with running_server(
        ["--factory", "tests.models:chaos"], cwd=tmp_path_factory.mktemp("slow")
    ) as running:
        yield running


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = [
        "--factory",
        "tests.slow_clients:long_call",
        "--header-timeout",
        str(QUICK),
        "--min-upload-rate-kb",
        "10",
        "--max-rows",
        "100000",
        "--timeout",
        "60",
    ]
    with running_server(args, cwd=tmp_path_factory.mktemp("quick")) as running:
        yield running


def server_connections(server: ServerProcess, address: str | None = None) -> int:
    """Connections the web process holds open (from ``address`` only, if given)."""
    return sum(
        1
        for c in psutil.Process(server.proc.pid).net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED
        and c.raddr
        and (address is None or c.raddr.ip == address)
    )


def assert_answered_in_time(probe: Probe, server: ServerProcess) -> None:
    assert len(probe.latencies) >= 20, probe.summary()
    assert None not in probe.latencies, probe.summary()
    assert max(x for x in probe.latencies if x is not None) < ANSWERED_WITHIN, probe.summary()
    server.wait_for_line(lambda line: "connections closed: " in line, timeout=5)  # the console


@pytest.mark.parametrize("count", [300, 500])
def test_slow_connections_from_many_addresses(default_server: ServerProcess, count: int) -> None:
    """Up to 2 per address from 250 addresses: no per-address cap applies. 300 fit under the
    global cap: the read deadline cuts each with a 408 after 10 s. 500 do not: the global cap
    also closes the slowest reader for each newcomer."""
    addresses = [f"127.0.0.{i}" for i in range(2, 252)]
    probe = Probe(default_server.url)
    with Tricklers(port_of(default_server), addresses, count) as slow:
        wait_until(lambda: slow.connects >= count, timeout=30)
        probe.run(seconds=15)
    assert_answered_in_time(probe, default_server)
    timed_out = sum(1 for answer in slow.answers if answer.startswith(b"HTTP/1.1 408 "))
    if count < 400:
        assert timed_out >= count // 2, (timed_out, slow.closed_by_server)
    else:
        assert slow.closed_by_server >= count, slow.closed_by_server
    # and all of them are let go once the flood ends: only the probe's (if any) remain
    wait_until(lambda: server_connections(default_server) <= 2, timeout=15)
    assert requests.get(f"{default_server.url}/health", timeout=5).status_code == 200


def test_500_slow_connections_from_one_address(default_server: ServerProcess) -> None:
    """One address holds at most max_connections_per_address (64): the rest are closed at
    accept, and normal clients from elsewhere do not notice."""
    held: list[int] = []
    probe = Probe(default_server.url)
    with Tricklers(port_of(default_server), ["127.0.0.2"], 500) as slow:
        wait_until(lambda: slow.connects >= 500, timeout=30)
        for _ in range(5):
            held.append(server_connections(default_server, "127.0.0.2"))
            probe.run(seconds=3)
    assert_answered_in_time(probe, default_server)
    assert 0 < max(held) <= 64, held


def answer_to_trickle(port: int, kind: str) -> tuple[float, bytes]:
    """Open a connection that trickles (``silent``: says nothing; ``headers``: a header byte
    every 0.3 s; ``body``: full headers, then a body byte every 0.3 s); return how long the
    server took to answer or close, and what it wrote."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.3) as sock:
        start = time.monotonic()
        if kind == "headers":
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        if kind == "body":
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )
        while time.monotonic() - start < 15:
            try:
                data = sock.recv(4096)
                return time.monotonic() - start, data
            except TimeoutError:
                pass
            try:
                if kind != "silent":
                    sock.sendall(b"X" if kind == "headers" else b"[")
            except OSError:
                return time.monotonic() - start, b""
    return time.monotonic() - start, b"(still open)"


@pytest.mark.parametrize("kind", ["silent", "headers", "body"])
def test_a_request_too_slow_to_arrive_gets_408(quick_server: ServerProcess, kind: str) -> None:
    took, answer = answer_to_trickle(port_of(quick_server), kind)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert b'{"error": "request timeout: ' in answer
    # cut after header_timeout (the body: its grace), give or take the once-a-second check
    assert QUICK <= took < QUICK + 2.5, took
    ok = requests.post(f"{quick_server.url}/predict", json=[{"a": 1, "b": 2}], timeout=5)
    assert ok.json() == {"predictions": [3.0]}


def test_a_long_upload_at_a_fair_rate_is_not_cut(quick_server: ServerProcess) -> None:
    """A 370 KB CSV sent at ~60 KB/s takes three times header_timeout: it is scored whole."""
    rows = 12_000
    body = ("a,b\n" + "".join(f"{i}.500000000000,1.000000000000\n" for i in range(rows))).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(quick_server), timeout=30)
    try:
        conn.putrequest("POST", "/invocations")
        conn.putheader("Content-Type", "text/csv")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        start = time.monotonic()
        for offset in range(0, len(body), 6_000):
            conn.send(body[offset : offset + 6_000])
            time.sleep(0.1)
        took = time.monotonic() - start
        answer = conn.getresponse()
        predictions = json.loads(answer.read())["predictions"]
    finally:
        conn.close()
    assert took > 3 * QUICK
    assert answer.status == 200
    assert predictions[:2] == [1.5, 2.5] and len(predictions) == rows


@pytest.mark.slow
def test_a_long_prediction_is_not_cut(quick_server: ServerProcess) -> None:
    """Only reading the request is bounded: a 20 s prediction is answered."""
    start = time.monotonic()
    answer = requests.post(
        f"{quick_server.url}/predict", json=[{"a": LONG_CALL, "b": 1}], timeout=LONG_CALL + 20
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [LONG_CALL + 1]}
    assert time.monotonic() - start >= LONG_CALL


def test_the_bounds_as_settings(tmp_path: Path) -> None:
    """The caps keep under Windows' select() limit and the per-address cap under the global."""
    from winserve import cli, settings
    from winserve.connections import ConnectionLimits, select_limit
    from winserve.server import connection_limits

    args = cli.parse(["--max-connections", "2000", "--max-connections-per-address", "5000"])
    limits = connection_limits(settings.load(args, env={}, cwd=tmp_path))
    assert limits == ConnectionLimits(2000, 5000, 10.0, 10 * 1024)
    on_windows = limits.for_platform(windows=True)
    assert on_windows.total == select_limit() < 512 and on_windows.per_address == select_limit()
    assert limits.for_platform(windows=False) == ConnectionLimits(2000, 2000, 10.0, 10 * 1024)


def test_the_bounds_hold_under_select_as_on_windows() -> None:
    """Windows has no poll(): waitress watches its sockets with select(). The same server on
    select() here, in this process (a plain WSGI app, caps of 100 and 100, headers in 2 s),
    keeps answering while 150 connections trickle from 75 addresses."""
    from waitress import wasyncore

    from winserve.connections import ConnectionLimits, create_server

    def app(environ: dict[str, object], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [BIG if environ["PATH_INFO"] == "/big" else b"ok"]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    limits = ConnectionLimits(total=100, per_address=100, header_timeout=QUICK)
    server = create_server(app, sock, limits, asyncore_use_poll=False, ident="winserve")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            wasyncore.poll(0.2, server._map)  # select(): waitress's loop on Windows
        wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown()

    thread = threading.Thread(target=loop, name="select-loop")
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    latencies: list[float] = []
    got: list[bytes] = []
    try:
        addresses = [f"127.0.0.{i}" for i in range(2, 77)]
        download = threading.Thread(target=slow_download, args=(sock.getsockname()[1], got))
        with Tricklers(sock.getsockname()[1], addresses, 150) as slow:
            wait_until(lambda: slow.connects >= 150, timeout=30)
            download.start()
            end = time.monotonic() + 2 * QUICK + 2
            while time.monotonic() < end:
                start = time.monotonic()
                answer = requests.get(url, timeout=10, headers={"Connection": "close"})
                assert answer.text == "ok"
                latencies.append(time.monotonic() - start)
                time.sleep(0.1)
            assert len(server.active_channels) <= limits.total
            download.join(30)
        assert slow.closed_by_server >= 50
        assert max(latencies) < ANSWERED_WITHIN, latencies
        # an answer read slowly is never taken for an idle connection and cut to make room
        assert got and got[0].endswith(BIG), len(got[0]) if got else "no answer"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


BIG = b"x" * 4_000_000  # an answer read at ~500 KB/s: 8 s, longer than any read deadline


def slow_download(port: int, got: list[bytes]) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        # kept alive: once its answer is written, the connection has no request in hand
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while not received.endswith(BIG) and (chunk := sock.recv(16_384)):
            received += chunk
            time.sleep(0.03)
        got.append(received)

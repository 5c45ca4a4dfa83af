"""Hostile input against a real server on a free port.

Each case: the status, the error shape, no traceback or server path in the answer, and a normal
request still answered right afterwards.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import ServerProcess, running_server

pytestmark = [pytest.mark.server, pytest.mark.spawn]

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("abuse")
    args = [
        "--factory",
        "tests.models:chaos",
        "--max-body-mb",
        "1",
        "--max-rows",
        "100",
        "--timeout",
        "2",
    ]
    with running_server(args, cwd=folder) as running:
        yield running


CASES: list[tuple[str, dict[str, Any], set[int], str]] = [
    ("NaN literal", {"data": '[{"a": NaN, "b": 1}]', "headers": JSON}, {400}, "NaN"),
    ("Infinity literal", {"data": '[{"a": Infinity, "b": 1}]', "headers": JSON}, {400}, "Infinity"),
    (
        "number too large for a float",
        {"data": '[{"a": 1e999, "b": 1}]', "headers": JSON},
        {400},
        "finite",
    ),
    ("object where a number goes", {"json": [{"a": {"x": 1}, "b": 1}]}, {400}, "expected a number"),
    ("list where a number goes", {"json": [[[1], 2]]}, {400}, "expected a number"),
    (
        "deep nesting",
        {"data": "[" * 50_000 + "]" * 50_000, "headers": JSON},
        {400},
        "nested too deeply",
    ),
    (
        "body over the limit",
        {"data": b"[" + b"1," * 600_000 + b"1]", "headers": JSON},
        {413},
        "max_body_mb",
    ),
    ("too many rows", {"json": [{"a": 1, "b": 1}] * 101}, {413}, "max_rows"),
    ("unicode column names", {"json": [{"ä": 1, "b": 1, "名前": 2}]}, {400}, "unknown columns"),
    (
        "duplicate column names",
        {"json": {"columns": ["a", "a"], "data": [[1, 2]]}},
        {400},
        "more than once",
    ),
    ("invalid UTF-8", {"data": b'[{"a": "\xff\xfe", "b": 1}]', "headers": JSON}, {400}, "UTF-8"),
    ("not JSON at all", {"data": "\x00\x01\x02", "headers": JSON}, {400}, "not valid JSON"),
    ("form instead of JSON", {"data": {"a": "1"}}, {415}, "application/json"),
    (
        "a compressed body",
        {
            "data": gzip.compress(b'[{"a": 1, "b": 1}]'),
            "headers": {**JSON, "Content-Encoding": "gzip"},
        },
        {415},
        "Content-Encoding: gzip; send it uncompressed",
    ),
    (
        "JSON in another charset",
        {
            "data": '[{"a": 1, "b": 1}]'.encode("utf-16"),
            "headers": {"Content-Type": "application/json; charset=utf-16"},
        },
        {415},
        "declared as utf-16; send JSON as UTF-8",
    ),
    ("empty body", {"data": "", "headers": JSON}, {400}, "empty"),
    (
        "a string a megabyte long",
        {"json": [{"a": "x" * 900_000, "b": 1}]},
        {400},
        "expected a number",
    ),
]


def _assert_clean(response: requests.Response) -> None:
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    assert "/tmp/" not in text and "/work/" not in text and "site-packages" not in text


def _still_fine(url: str) -> None:
    ok = requests.post(f"{url}/predict", json={"a": 1, "b": 2}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"predictions": [3.0]}


@pytest.mark.parametrize(("name", "kwargs", "statuses", "words"), CASES, ids=[c[0] for c in CASES])
def test_hostile_bodies_get_a_clear_4xx(
    server: ServerProcess, name: str, kwargs: dict[str, Any], statuses: set[int], words: str
) -> None:
    response = requests.post(f"{server.url}/predict", timeout=30, **kwargs)
    assert response.status_code in statuses, (name, response.status_code, response.text[:300])
    assert set(response.json()) == {"error"}
    assert words in response.json()["error"]["message"]
    _assert_clean(response)
    _still_fine(server.url)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/x",
        "/..%2f..%2fetc/passwd",
        "/model/../../etc/passwd",
    ],
)
def test_path_tricks_find_nothing(server: ServerProcess, path: str) -> None:
    response = requests.get(f"{server.url}{path}", timeout=10)
    assert response.status_code in {400, 404}
    assert "root:" not in response.text
    _assert_clean(response)
    _still_fine(server.url)


def test_huge_headers_are_refused(server: ServerProcess) -> None:
    response = requests.get(f"{server.url}/model", headers={"X-Big": "y" * 100_000}, timeout=10)
    assert 400 <= response.status_code < 500
    _still_fine(server.url)


def test_slow_and_partial_requests_do_not_block_others(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    stuck = []
    for _ in range(20):  # clients that start a request and never finish it
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n[{"a": '
        )
        stuck.append(sock)
    try:
        started = time.monotonic()
        _still_fine(server.url)
        assert time.monotonic() - started < 2
    finally:
        for sock in stuck:
            sock.close()
    _still_fine(server.url)


def test_a_model_that_hangs_on_hostile_input_is_cut_off(server: ServerProcess) -> None:
    response = requests.post(f"{server.url}/predict", json={"a": 999, "b": 1}, timeout=30)
    assert response.status_code == 504
    _assert_clean(response)
    deadline = time.monotonic() + 30
    while requests.get(f"{server.url}/health", timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _still_fine(server.url)


def test_the_server_version_is_not_announced(server: ServerProcess, tmp_path: Path) -> None:
    response = requests.get(f"{server.url}/health", timeout=10)
    assert response.headers["Server"] == "winserve"


def test_a_body_naming_a_hundred_thousand_columns_is_refused_and_others_still_answered(
    tmp_path: Path,
) -> None:
    """Issue 13 item 3: such a body (within the default 20 MB) once cost minutes per request
    (a list lookup per name) and stalled every thread; now its cost grows with its size, and
    ``bench/hostile_bodies.py`` measures it. Here: the clear 400 comes, within the request's
    deadline, for both the JSON split body and an MLflow CSV header, and normal requests are
    answered meanwhile and after."""
    names = [f"column {i}" for i in range(100_000)]
    split = {"columns": names, "data": [[0] * len(names)]}
    header = ",".join(names) + "\n" + ",".join(["0"] * len(names))
    with running_server(["--factory", "tests.models:chaos"], cwd=tmp_path) as server:
        answer = requests.post(f"{server.url}/predict", json=split, timeout=60)
        assert answer.status_code == 400
        assert (
            "missing columns 'a', 'b'; unknown columns 'column 0'"
            in answer.json()["error"]["message"]
        )
        csv_answer = requests.post(
            f"{server.url}/invocations",
            data=header.encode(),
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
        assert csv_answer.status_code == 400
        assert csv_answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        normal = requests.post(f"{server.url}/predict", json=[{"a": 1, "b": 2}], timeout=10)
        assert normal.json() == {"predictions": [3.0]}

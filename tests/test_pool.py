"""PoolBackend with real spawned model hosts: batching, deadlines, crashes and restarts."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import psutil
import pytest

from tests.conftest import iris_frame
from tests.helpers import at_once, model_hosts, wait_until
from winserve.backends.base import row_errors
from winserve.backends.pool import PoolBackend
from winserve.backends.proxy import spawn_context
from winserve.errors import (
    ModelError,
    ModelInputError,
    ModelLoadError,
    ModelTimeout,
    ModelUnavailable,
)
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.spawn


def _row(a: float, b: float = 1.0) -> dict[str, Any]:
    return {"matrix": np.array([[a, b]])}


@pytest.fixture
def pool_factory() -> Iterator[Any]:
    pools: list[PoolBackend] = []

    def make(spec: ModelSpec, **kwargs: Any) -> PoolBackend:
        pool = PoolBackend(spec, **kwargs)
        pools.append(pool)
        pool.start()
        pool.wait_ready(60)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_host_is_a_spawned_child_and_predictions_match(
    pool_factory: Any, iris_forest: Path
) -> None:
    pool = pool_factory(ModelSpec(str(iris_forest)))
    pid = pool.health().replicas[0].pid
    host = psutil.Process(pid)
    assert host.ppid() == os.getpid()
    assert "multiprocessing.spawn" in " ".join(host.cmdline()) or "spawn_main" in " ".join(
        host.cmdline()
    )
    x, _ = iris_frame()
    result = pool.predict({"matrix": x.to_numpy()}, True)
    model = joblib.load(iris_forest)
    assert result.predictions == model.predict(x).tolist()
    assert np.allclose(result.probabilities, model.predict_proba(x))
    assert spawn_context().get_start_method() == "spawn"


def test_manager_address_is_a_local_socket_not_tcp(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"))
    host = psutil.Process(pool.health().replicas[0].pid)
    kinds = {c.family for c in host.net_connections(kind="all")}
    assert socket.AF_INET not in kinds and socket.AF_INET6 not in kinds
    assert socket.AF_UNIX in kinds


def test_concurrent_requests_share_model_calls(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:batch_size"), max_batch_rows=64)
    # each answer is the number of rows in the model call that made it
    sizes = [answer[0] for answer in at_once(pool, [_row(1.0)] * 16, 30)]
    assert len(sizes) == 16
    assert max(sizes) > 1, f"no request was merged with another: {sizes}"
    assert max(sizes) <= 64


def test_one_bad_request_in_a_batch_fails_alone(pool_factory: Any) -> None:
    pool = pool_factory(
        ModelSpec(factory="tests.models:chaos"),
        max_batch_wait_ms=200,
    )
    results = at_once(pool, [_row(-1.0 if i == 3 else float(i)) for i in range(8)], 60)
    assert isinstance(results[3], ModelInputError)
    assert [v for i, v in enumerate(results) if i != 3] == [[i + 1.0] for i in range(8) if i != 3]
    # the very error the bad request gets alone, found without another call per request: the
    # host isolates the failing rows in the batch's own call (issue 14)
    with pytest.raises(ModelInputError) as alone:
        pool.predict(_row(-1.0))
    assert results[3].message == alone.value.message
    calls = next(s.value for s in pool.batch_rows.collect()[0].samples if s.name.endswith("_count"))
    assert calls <= 8 + 1, f"{calls} model calls for 8 requests (and 1 alone)"


def test_a_request_with_a_bad_row_gets_its_error_and_every_rows_answer(pool_factory: Any) -> None:
    """Alone or in a batch, a request with a rejected row fails with the error it always got;
    the answers of its other rows (and which row failed why) come with it, for CSV scoring."""
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"), max_batch_wait_ms=200)
    rows = {"matrix": np.array([[1.0, 1.0], [-1.0, 1.0], [13.0, 1.0], [4.0, 1.0]])}
    with pytest.raises(ModelInputError) as alone:
        pool.predict(rows)
    assert alone.value.message == "the model rejected the input: ValueError: a must not be -1"
    isolated = row_errors(alone.value)
    assert isolated is not None
    assert isolated.prediction.predictions == [2.0, None, None, 5.0]
    assert {row: e.message for row, e in isolated.errors.items()} == {
        1: "the model rejected the input: ValueError: a must not be -1",
        2: "the model failed: RuntimeError: unlucky number",
    }
    assert isinstance(isolated.errors[2], ModelError)

    results: dict[str, Any] = {}

    def call(name: str, payload: dict[str, Any]) -> None:
        try:
            results[name] = pool.predict(payload).predictions
        except Exception as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=call, args=("good", _row(2.0))),
        threading.Thread(
            target=call, args=("bug", {"matrix": np.array([[3.0, 1.0], [13.0, 1.0]])})
        ),
        threading.Thread(target=call, args=("also good", {"matrix": np.array([[5.0, 1.0]] * 3)})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results["good"] == [3.0] and results["also good"] == [6.0, 6.0, 6.0]
    bug = results["bug"]
    assert (
        isinstance(bug, ModelError)
        and bug.message == "the model failed: RuntimeError: unlucky number"
    )
    assert row_errors(bug) is not None and row_errors(bug).prediction.predictions == [4.0, None]


def test_a_hung_model_gets_504_and_a_fresh_replica(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"), timeout=1.0)
    old_pid = pool.health().replicas[0].pid
    started = time.monotonic()
    with pytest.raises(ModelTimeout, match="did not answer within 1 s"):
        pool.predict(_row(999.0))
    assert time.monotonic() - started < 1.0 + 0.5
    wait_until(
        lambda: pool.health().status == "ready" and pool.health().replicas[0].pid != old_pid, 30
    )
    assert (
        not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert pool.predict(_row(2.0)).predictions == [3.0]
    assert pool.health().replicas[0].restarts == 1


def test_a_crash_on_one_input_spares_the_others(pool_factory: Any) -> None:
    pool = pool_factory(
        ModelSpec(factory="tests.models:chaos"),
        max_batch_wait_ms=100,
    )
    results = at_once(pool, [_row(666.0 if i == 0 else float(i)) for i in range(6)], 60)
    assert isinstance(results[0], ModelUnavailable) and results[0].status == 503
    assert "crashed while predicting this request" in results[0].message
    assert results[0].headers["Retry-After"]
    assert results[1:] == [[i + 1.0] for i in range(1, 6)]
    wait_until(lambda: pool.health().status == "ready", 30)


def test_a_killed_idle_host_is_noticed_and_replaced(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"))
    pid = pool.health().replicas[0].pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pool.health().replicas[0].restarts == 1, 5)
    seen = wait_until(lambda: pool.health() if pool.health().status == "ready" else None, 30)
    assert seen.replicas[0].pid != pid
    assert pool.predict(_row(1.0)).predictions == [2.0]


def test_requests_get_503_while_no_replica_is_ready(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"))
    os.kill(pool.health().replicas[0].pid, signal.SIGKILL)
    wait_until(lambda: pool.health().status != "ready", 5)
    with pytest.raises(ModelUnavailable) as caught:
        pool.predict(_row(1.0))
    assert caught.value.status == 503 and int(caught.value.headers["Retry-After"]) >= 1
    wait_until(lambda: pool.health().status == "ready", 30)


def test_two_workers_both_serve(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"), workers=2)
    wait_until(lambda: pool.health().status == "ready", 30)
    pids = {r.pid for r in pool.health().replicas}
    assert len(pids) == 2
    os.kill(next(iter(pids)), signal.SIGKILL)
    wait_until(lambda: pool.health().status == "degraded", 5)
    assert pool.predict(_row(1.0)).predictions == [2.0]  # the other replica answers meanwhile
    wait_until(lambda: pool.health().status == "ready", 30)


def test_a_model_that_cannot_load_fails_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"\x80\x04 truncated")
    pool = PoolBackend(ModelSpec(str(broken)))
    pool.start()
    try:
        with pytest.raises(ModelLoadError, match=r"cannot load broken\.joblib"):
            pool.wait_ready(60)
        health = pool.health()
        assert health.status in {"failed", "restarting", "loading"}
        assert "cannot load broken.joblib" in health.reason
    finally:
        pool.close()


def test_close_stops_every_host_quickly(pool_factory: Any) -> None:
    pool = pool_factory(ModelSpec(factory="tests.models:chaos"), workers=2)
    wait_until(lambda: pool.health().status == "ready", 30)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert model_hosts() == []
    with pytest.raises(ModelUnavailable, match="shutting down"):
        pool.predict(_row(1.0))


def test_close_is_bounded_with_frozen_hosts(pool_factory: Any) -> None:
    """Issue 13: a host that answers nothing (stopped) must not hold up the stop: each is asked,
    and killed when still there after STOP_SECONDS, all at once."""
    from winserve.backends.replica import STOP_SECONDS

    pool = pool_factory(ModelSpec(factory="tests.models:chaos"), workers=2)
    wait_until(lambda: pool.health().status == "ready", 30)
    pids = [r.pid for r in pool.health().replicas]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < STOP_SECONDS + 2.0
    assert model_hosts() == []
    assert pool.health().status == "stopped"


def test_a_first_load_that_fails_everywhere_is_not_retried(tmp_path: Path) -> None:
    pool = PoolBackend(ModelSpec(factory="tests.models:broken"), workers=2)
    pool.start()
    try:
        with pytest.raises(ModelLoadError, match="this factory always fails"):
            pool.wait_ready(60)
        time.sleep(1.0)  # a retry would have started by now (the first waits 0 s)
        health = pool.health()
        assert health.status == "failed", health
        assert [r.restarts for r in health.replicas] == [0, 0]
        assert model_hosts() == []
    finally:
        pool.close()

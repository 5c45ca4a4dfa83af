"""PoolBackend's logic with fake replicas, no process (issue 23): batching, deadlines, the retry
of a crashed batch, dead hosts and their restarts. ``test_pool.py`` runs the same with real
spawned hosts; these run in the fast layer, in seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fakes import FakeModel, answer, pids, row, rows
from tests.helpers import at_once, wait_until
from winserve.backends import supervisor
from winserve.backends.base import row_errors
from winserve.backends.batch import Call, deliver
from winserve.backends.pool import CALLER_GRACE, PoolBackend
from winserve.backends.replica import Replica
from winserve.backends.runner import HostGone
from winserve.errors import ModelInputError, ModelLoadError, ModelTimeout, ModelUnavailable
from winserve.host.answers import ErrorRecord
from winserve.model_info import ModelSpec

pytestmark = pytest.mark.timeout(30)

BACKOFF = 0.2  # the pool's first restart pause in these tests (0.5 s in use)


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's pauses (restart backoff, looks at a changed file), shortened: the rules are
    the same, read by the dispatchers when they pause, and the fast layer stays fast."""
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST", BACKOFF)
    monkeypatch.setattr(supervisor, "FILE_CHECK", 0.1)


@pytest.fixture
def pools() -> Iterator[Callable[..., PoolBackend]]:
    """``pools(model, **options)``: a pool of ``model``'s fake replicas, ready; closed after."""
    made: list[PoolBackend] = []

    def make(model: FakeModel, **options: Any) -> PoolBackend:
        pool = model.pool(**options)
        made.append(pool)
        pool.wait_ready(5)
        return pool

    yield make
    for pool in made:
        pool.close()


# -- batching ---------------------------------------------------------------------------------


def test_twenty_concurrent_requests_are_merged_into_few_calls(pools: Any) -> None:
    model = FakeModel(latency=0.05)
    pool = pools(model)
    results = at_once(pool, [row(i) for i in range(20)])
    assert results == [[answer(i)] for i in range(20)]
    assert sum(model.calls) == 20
    # the first caller finds the replica idle and calls alone; the others queue meanwhile and
    # the dispatcher takes them together
    assert len(model.calls) <= 4, model.calls
    assert max(model.calls) >= 10, model.calls


def test_a_batch_never_holds_more_than_max_batch_rows(pools: Any) -> None:
    model = FakeModel(latency=0.02)
    pool = pools(model, max_batch_rows=4)
    payloads = [rows(i, i + 0.5, i + 0.25) if i % 5 == 0 else row(i) for i in range(20)]
    results = at_once(pool, payloads)
    for payload, result in zip(payloads, results, strict=True):
        assert result == [answer(x0) for x0 in payload["matrix"][:, 0]]
    assert max(model.calls) <= 4, model.calls
    assert sum(model.calls) == 28
    assert len(model.calls) >= 7  # 28 rows, at most 4 a call


def test_a_request_larger_than_max_batch_rows_is_still_answered_alone(pools: Any) -> None:
    model = FakeModel()
    pool = pools(model, max_batch_rows=2)
    assert pool.predict(rows(1, 2, 3, 4, 5)).predictions == [answer(x) for x in (1, 2, 3, 4, 5)]
    assert model.calls == [5]


def test_a_lone_caller_waits_for_no_batch(pools: Any) -> None:
    """max_batch_wait_ms lets the dispatcher wait for company; a request alone in the pool is
    called at once from its own thread and never waits for it (issue 14)."""
    model = FakeModel()
    pool = pools(model, max_batch_wait_ms=300)
    took = []
    for i in range(10):
        began = time.perf_counter()
        assert pool.predict(row(i)).predictions == [answer(i)]
        took.append(time.perf_counter() - began)
    assert max(took) < 0.1, took
    assert model.calls == [1] * 10


def test_a_lone_call_is_made_by_its_callers_thread_and_counted_in_batch_rows(pools: Any) -> None:
    """The lone call (issue 29): the caller's own thread calls the replica, the answer keeps
    what was asked of it (no probabilities unless asked), and /metrics counts its rows."""
    model = FakeModel()
    pool = pools(model)
    seen: list[str] = []
    replica = model.replicas[0]
    answered = replica.predict

    def predict(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return answered(*args, **kwargs)

    replica.predict = predict  # type: ignore[method-assign]
    prediction = pool.predict(rows(1, 2, 3))
    assert prediction.predictions == [answer(1), answer(2), answer(3)]
    assert prediction.probabilities is None and prediction.scores is None
    assert seen == [threading.current_thread().name]
    counted = {s.name: s.value for m in pool.batch_rows.collect() for s in m.samples}
    assert counted["winserve_batch_rows_sum"] == 3 and counted["winserve_batch_rows_count"] == 1


def test_a_lone_call_refused_by_the_model_gets_its_400(pools: Any) -> None:
    model = FakeModel(refuse=4)
    pool = pools(model)
    with pytest.raises(ModelInputError, match="the model rejected the input"):
        pool.predict(row(4))
    assert pool.predict(row(5)).predictions == [answer(5)]  # the replica was not restarted
    assert model.replicas[0].restarts == 0


def test_a_lone_call_that_crashes_its_host_is_retried_once_alone(pools: Any) -> None:
    """A crash in the caller's own call makes it a queued call: retried once on the
    restarted replica, answered; the replica restarted once."""
    model = FakeModel(crash=6, crash_times=1)
    pool = pools(model)
    assert pool.predict(row(6)).predictions == [answer(6)]
    assert model.crashes == 1 and model.replicas[0].restarts == 1


@pytest.mark.parametrize("wait_ms", [150, 0])
def test_a_queued_request_waits_max_batch_wait_for_company(pools: Any, wait_ms: float) -> None:
    """A lone call (0.1 s), one request queued behind it, four more once the dispatcher has
    taken that one: with max_batch_wait_ms it holds the queued request long enough to take
    the four along; without, it calls it alone at once."""
    model = FakeModel(latency=0.1)
    pool = pools(model, max_batch_wait_ms=wait_ms)
    results: list[Any] = []

    def call(x0: float) -> None:
        results.append(pool.predict(row(x0)).predictions[0])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    threads[0].start()
    wait_until(lambda: model.calls == [1], 5, interval=0.002)  # the lone call runs
    threads[1].start()
    wait_until(lambda: pool.health().queue_depth == 1, 5, interval=0.002)
    wait_until(lambda: pool.health().queue_depth == 0, 5, interval=0.002)  # taken
    for thread in threads[2:]:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == sorted(answer(i) for i in range(6))
    assert sum(model.calls) == 6 and model.calls[0] == 1
    if wait_ms:
        assert model.calls[1] > 1, model.calls  # request 1 waited and went with company
    else:
        assert model.calls[1] == 1, model.calls  # request 1 was called at once, alone


# -- deadlines --------------------------------------------------------------------------------


def test_a_call_past_its_timeout_gets_504_and_a_fresh_replica(
    pools: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model = FakeModel(hang=-1)
    pool = pools(model, timeout=0.3)
    first = pids(model)
    began = time.monotonic()
    with pytest.raises(ModelTimeout, match=r"within 0\.3 s"):
        pool.predict(row(-1))
    assert time.monotonic() - began < 0.3 + 0.5
    replica = model.replicas[0]
    wait_until(lambda: pool.health().status == "ready" and replica.restarts == 1, 5)
    assert replica.kills >= 1 and replica.starts == 2
    assert pids(model).isdisjoint(first)  # a new host, not the hung one
    assert pool.predict(row(2)).predictions == [answer(2)]
    assert "replica 0: a prediction took longer than 0.3 s; restarting" in caplog.text


def test_time_spent_queued_never_kills_a_replica(pools: Any) -> None:
    """Ten one-row requests that can only be served one at a time, 0.15 s each, with a 0.4 s
    timeout: the late ones get 504 from the queue, the replica keeps its host (issue 13)."""
    model = FakeModel(latency=0.15)
    pool = pools(model, timeout=0.4, max_batch_rows=1)
    host = pids(model)
    results = at_once(pool, [row(i) for i in range(10)])
    answered = [r for r in results if isinstance(r, list)]
    timed_out = [r for r in results if isinstance(r, ModelTimeout)]
    assert len(answered) + len(timed_out) == 10, results
    assert 1 <= len(answered) <= 4 and timed_out, results
    assert max(model.calls) == 1
    assert len(model.calls) == len(answered)  # a job past its deadline never reaches the model
    replica = model.replicas[0]
    assert (replica.kills, replica.restarts, replica.starts) == (0, 0, 1)
    assert pids(model) == host and pool.health().status == "ready"


def test_a_full_queue_is_refused_with_retry_advice(pools: Any) -> None:
    model = FakeModel(latency=0.3)
    pool = pools(model, max_queue=2, max_batch_rows=1)
    results = at_once(pool, [row(i) for i in range(8)])
    refused = [r for r in results if isinstance(r, ModelUnavailable)]
    assert refused, results
    assert all("max_queue" in str(r) and r.retry_after == 1 for r in refused)
    assert sum(isinstance(r, list) for r in results) == 8 - len(refused)


# -- a failed batch ---------------------------------------------------------------------------


def test_a_refused_request_in_a_merged_batch_fails_alone(pools: Any) -> None:
    model = FakeModel(latency=0.05, refuse=-1)
    pool = pools(model)
    values = [float(i) for i in range(8)]
    values[5] = -1
    results = at_once(pool, [row(v) for v in values])
    assert any(n > 1 for n in model.calls), model.calls  # a merged call really held it
    for value, result in zip(values, results, strict=True):
        if value == -1:
            assert isinstance(result, ModelInputError), result
            assert "refused by the fake model" in str(result)
        else:
            assert result == [answer(value)]
    assert model.replicas[0].restarts == 0  # a refused row is the input's fault, not the host's


def test_a_batch_that_crashed_its_host_is_retried_each_alone(pools: Any) -> None:
    """A request that kills the host once: its batch is retried, each request alone on the
    fresh host, and everyone is answered."""
    model = FakeModel(latency=0.05, crash=-2, crash_times=1)
    pool = pools(model)
    values = [float(i) for i in range(6)]
    values[3] = -2
    results = at_once(pool, [row(v) for v in values])
    assert results == [[answer(v)] for v in values]
    assert model.replicas[0].restarts == 1
    crashed_at = next(i for i, _ in enumerate(model.calls) if i > 0 and model.calls[i] > 1)
    assert model.calls[crashed_at + 1 :].count(1) >= model.calls[crashed_at], model.calls


def test_a_request_that_crashes_the_host_twice_gets_503_its_neighbours_answers(
    pools: Any,
) -> None:
    model = FakeModel(latency=0.05, crash=-2)
    pool = pools(model)
    values = [float(i) for i in range(6)]
    values[2] = -2
    results = at_once(pool, [row(v) for v in values])
    for value, result in zip(values, results, strict=True):
        if value == -2:
            assert isinstance(result, ModelUnavailable), result
            assert "crashed while predicting this request, twice" in str(result)
            assert result.retry_after >= 1
        else:
            assert result == [answer(value)], results


# -- dead hosts -------------------------------------------------------------------------------


def test_a_host_that_died_while_idle_is_noticed_and_replaced(pools: Any) -> None:
    model = FakeModel()
    pool = pools(model)
    replica = model.replicas[0]
    old = replica.pid
    replica.die()
    wait_until(lambda: replica.restarts == 1 and replica.state == "ready", 5)
    assert replica.pid != old
    assert pool.predict(row(1)).predictions == [answer(1)]


def test_a_request_that_finds_its_host_dead_is_answered_by_the_next(pools: Any) -> None:
    """The host died since the dispatcher last looked: the caller's own call finds it gone,
    and the request is retried on the restarted replica instead of failing."""
    model = FakeModel()
    pool = pools(model)
    replica = model.replicas[0]
    replica.die()
    assert pool.predict(row(7)).predictions == [answer(7)]
    assert replica.restarts == 1 and replica.starts == 2


def test_a_caller_whose_call_crashed_late_still_waits_at_most_its_timeout(pools: Any) -> None:
    """The module's promise: 'a caller waits at most timeout (+ a small grace) from the moment
    it queued'. Here the lone call ends in a crash after 0.4 s of a 0.5 s timeout, and the
    new host takes 1 s to load: the caller should have its 504 by about 0.75 s."""
    model = FakeModel(latency=0.4, crash=-2, crash_times=1)
    pool = pools(model, timeout=0.5)
    model.load_seconds = 1.0
    began = time.monotonic()
    with pytest.raises(ModelTimeout):
        pool.predict(row(-2))
    took = time.monotonic() - began
    assert took < 0.5 + CALLER_GRACE + 0.15, f"the caller waited {took:.2f} s"


def test_while_no_replica_is_ready_a_caller_gets_503_with_retry_advice(pools: Any) -> None:
    model = FakeModel()
    pool = pools(model)
    model.load_seconds = 0.5
    model.replicas[0].die()
    wait_until(lambda: model.replicas[0].state != "ready", 5)
    with pytest.raises(ModelUnavailable, match="no model replica is ready") as caught:
        pool.predict(row(1))
    assert caught.value.retry_after >= 1
    assert pool.health().status == "loading"
    wait_until(lambda: pool.health().status == "ready", 5)


def test_repeated_deaths_restart_with_backoff(pools: Any) -> None:
    """A first failure restarts at once; the next waits BACKOFF_FIRST, then twice that."""
    model = FakeModel(crash=-2)
    pool = pools(model)
    replica = model.replicas[0]
    with pytest.raises(ModelUnavailable):
        pool.predict(row(-2))  # crashes its host, is retried alone, crashes the next one
    wait_until(lambda: replica.restarts == 2 and replica.state == "ready", 5)
    replica.die()  # a third death, while idle
    wait_until(lambda: replica.restarts == 3 and replica.state == "ready", 5)
    gaps = [b - a for a, b in zip(replica.start_times, replica.start_times[1:], strict=False)]
    assert len(gaps) == 3, gaps
    assert gaps[0] < BACKOFF  # the first crash: at once
    assert gaps[1] >= BACKOFF * 0.9, gaps
    assert gaps[2] >= 2 * BACKOFF * 0.9, gaps


def test_a_model_that_fails_to_load_everywhere_is_not_retried() -> None:
    model = FakeModel(load_error="ValueError: not a model")
    pool = model.pool(workers=2)
    try:
        with pytest.raises(ModelLoadError, match="not a model"):
            pool.wait_ready(5)
        wait_until(lambda: all(r.state in ("failed", "stopped") for r in model.replicas), 5)
        assert [r.starts for r in model.replicas] == [1, 1]
        assert pool.health().status == "failed"
    finally:
        pool.close()


def test_close_answers_the_waiting_and_stops_every_replica(pools: Any) -> None:
    model = FakeModel(hang=-1)
    pool = pools(model, workers=2, timeout=10)
    results: list[Any] = []

    def call() -> None:
        try:
            results.append(pool.predict(row(-1)))
        except Exception as exc:
            results.append(exc)

    callers = [threading.Thread(target=call) for _ in range(4)]
    for thread in callers:
        thread.start()
    wait_until(lambda: len(model.calls) == 2, 5)  # both replicas hang, two requests queue
    began = time.monotonic()
    pool.close()
    for thread in callers:
        thread.join(5)
    assert time.monotonic() - began < 3
    assert len(results) == 4 and all(isinstance(r, ModelUnavailable) for r in results), results
    assert all(r.stopped for r in model.replicas)
    assert pool.health().status == "stopped"


def test_an_explanation_is_never_merged_with_predictions(pools: Any) -> None:
    """``ask`` (explain / whatif, issue 25) queues with the predictions and is called alone."""
    model = FakeModel(latency=0.05)
    pool = pools(model)
    asked: list[Any] = []
    explainer = threading.Thread(
        target=lambda: asked.append(pool.ask("explain", rows(1, 2), {"top": 3}))
    )
    busy = threading.Thread(target=pool.predict, args=(row(0),))
    busy.start()  # the replica is busy: everything after it queues together
    time.sleep(0.01)
    explainer.start()
    results = at_once(pool, [row(i) for i in range(1, 9)])
    for thread in (busy, explainer):
        thread.join(10)
    assert results == [[answer(i)] for i in range(1, 9)]
    assert model.asks == [("explain", 2)]
    assert asked[0]["asked"] == "explain" and asked[0]["options"]["top"] == 3
    assert sum(model.calls) == 9


def test_one_replica_down_of_two_is_degraded_and_the_other_serves(pools: Any) -> None:
    model = FakeModel()
    pool = pools(model, workers=2)
    wait_until(lambda: pool.health().status == "ready", 5)
    model.load_seconds = 0.5
    model.replicas[0].die()
    wait_until(lambda: pool.health().status == "degraded", 5)
    assert pool.predict(row(1)).predictions == [answer(1)]
    assert "exited with code 1" in pool.health().reason
    wait_until(lambda: pool.health().status == "ready", 5)


def test_a_restart_never_loads_a_file_changed_since_the_first_load(
    pools: Any, tmp_path: Path
) -> None:
    """A host that died after its file was overwritten is held "failed", saying what to do,
    until the loaded file is back: the replicas never serve two different models."""
    path = tmp_path / "model.joblib"
    path.write_bytes(b"first")
    model = FakeModel()
    pool = pools(model, spec=ModelSpec(path=str(path)))
    path.write_bytes(b"retrained")
    replica = model.replicas[0]
    replica.die()
    wait_until(lambda: replica.state == "failed", 5)
    with pytest.raises(ModelUnavailable, match=r"no model replica can start: .*changed on disk"):
        pool.predict(row(1))
    assert replica.starts == 1  # no host was started for the other file
    path.write_bytes(b"first")  # put back
    wait_until(lambda: replica.state == "ready", 5)
    assert replica.starts == 2
    assert pool.predict(row(1)).predictions == [answer(1)]


def test_tensors_merge_only_with_their_own_shape_and_within_max_batch_bytes(
    pools: Any,
) -> None:
    """Issue 24: a call holds tensors of one per-row shape only, and at most max_batch_bytes of
    them; every request gets its own rows' answers. (0.1 s a call: the first, alone, holds
    the replica while the other callers queue, however slowly a busy machine starts them.)"""
    model = FakeModel(latency=0.1)
    pool = pools(model, max_batch_bytes=3 * 4 * 100)  # three rows of 100 float32
    payloads = [
        {"tensors": {"x": np.full((1, 100) if i % 2 else (1, 2, 5), i, dtype=np.float32)}}
        for i in range(12)
    ]
    results = at_once(pool, payloads)
    assert results == [[float(i * (100 if i % 2 else 10))] for i in range(12)]
    assert sorted(set(model.shapes)) == [(2, 5), (100,)]
    assert sum(model.calls) == 12 and len(model.calls) < 12, model.calls  # some merged
    wide = [n for n, shape in zip(model.calls, model.shapes, strict=True) if shape == (100,)]
    assert max(wide) <= 3, wide


# -- the supervisor (backends/supervisor.py) and the split of a batch's answer (backends/batch.py)


def test_a_crashed_batch_of_two_replicas_is_retried_on_the_one_still_up(pools: Any) -> None:
    """The calls of a batch that killed one replica's host are retried each alone, and the
    pool's other replica answers them while the crashed one restarts."""
    model = FakeModel(latency=0.05, crash=-2, crash_times=1, load_seconds=0.3)
    pool = pools(model, workers=2)
    values = [float(i) for i in range(8)]
    values[5] = -2
    results = at_once(pool, [row(v) for v in values])
    assert results == [[answer(v)] for v in values]
    assert sorted(r.restarts for r in model.replicas) == [0, 1]
    assert sum(model.calls) >= len(values)  # the crashed batch's rows were asked again


def test_backoff_doubles_up_to_its_cap_and_resets_once_a_replica_served() -> None:
    backoff = supervisor.Backoff(reset_after=10.0)
    pauses = [backoff.next() for _ in range(9)]
    assert pauses[:4] == [0.0, BACKOFF, 2 * BACKOFF, 4 * BACKOFF]
    assert pauses == sorted(pauses) and max(pauses) <= supervisor.BACKOFF_MAX
    backoff.served(3.0)  # too short a life to forgive the crashes before it
    assert backoff.next() > 0
    backoff.served(11.0)
    assert backoff.next() == 0.0  # the next failure restarts at once again
    assert supervisor.Backoff(reset_after=0.0).next() == 0.0


def test_backoff_never_passes_backoff_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_MAX", 1.0)
    backoff = supervisor.Backoff()
    assert [backoff.next() for _ in range(6)] == [0.0, BACKOFF, 0.4, 0.8, 1.0, 1.0]


def test_a_start_is_classified_by_what_the_runner_raised() -> None:
    loads = FakeModel(load_error="ValueError: not a model")
    failure = supervisor.start(loads.make_replica(0, ModelSpec()), 5)
    assert failure == supervisor.Failure("load_error", "ValueError: not a model")
    slow = FakeModel(load_seconds=0.3)
    failure = supervisor.start(slow.make_replica(0, ModelSpec()), 0.05)
    assert failure == supervisor.Failure("timeout", "the model did not load within 0.05 s")
    stopped = FakeModel().make_replica(0, ModelSpec())
    stopped.stop()
    failure = supervisor.start(stopped, 5)
    assert isinstance(failure, supervisor.Failure) and failure.kind == "crash"
    assert failure.reason.startswith("the fake model process exited with code 1 while loading")
    info = supervisor.start(FakeModel(name="ok").make_replica(0, ModelSpec()), 5)
    assert isinstance(info, dict) and info["name"] == "ok"


def test_a_call_failure_is_a_timeout_a_crash_or_a_broken_reply() -> None:
    replica = FakeModel().make_replica(0, ModelSpec())
    assert supervisor.call_failure(TimeoutError(), replica, 2.5) == supervisor.Failure(
        "timeout", "a prediction took longer than 2.5 s"
    )
    gone = supervisor.call_failure(HostGone("eof"), replica, 2.5)
    assert gone == supervisor.Failure("crash", "the fake model process exited with code 1")
    broken = supervisor.call_failure(KeyError("x"), replica, 2.5)
    assert broken.kind == "broken" and "KeyError" in broken.reason


def _supervised(
    model: FakeModel, keep_trying: Callable[[Any], bool], serve: Callable[[Any], None]
) -> tuple[Any, threading.Event, threading.Thread, list[str]]:
    """A replica of ``model`` under a supervisor of its own in a thread; the states it
    went through, as ``changed`` saw them."""
    replica = model.make_replica(0, ModelSpec())
    stopping = threading.Event()
    seen: list[str] = []
    hooks = supervisor.Hooks(
        serve=serve, keep_trying=keep_trying, changed=lambda: seen.append(replica.state)
    )
    runner = supervisor.Supervisor(
        replica,
        hooks,
        load_timeout=5,
        stopping=stopping,
        label="test",
        log=logging.getLogger("test"),
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return replica, stopping, thread, seen


def test_the_supervisor_backs_off_between_failed_loads_and_stops_when_told() -> None:
    """A model that loaded once and then fails to load: the restarts come at once, then after
    BACKOFF, then twice that; ``stopping`` ends the wait, and the replica, within moments."""
    model = FakeModel()
    served = threading.Event()

    def serve(replica: Any) -> None:  # the first host dies at once; its file then breaks
        served.set()
        model.load_error = "ValueError: the disk is full"

    replica, stopping, thread, seen = _supervised(model, lambda r: True, serve)
    try:
        wait_until(lambda: len(replica.start_times) >= 4, 5)
        gaps = [b - a for a, b in zip(replica.start_times, replica.start_times[1:], strict=False)]
        assert served.is_set() and gaps[0] < BACKOFF, gaps
        assert gaps[1] >= BACKOFF * 0.9 and gaps[2] >= 2 * BACKOFF * 0.9, gaps
        assert replica.state == "failed" and replica.last_error == "ValueError: the disk is full"
        assert seen[:2] == ["loading", "ready"] and "restarting" in seen
    finally:
        stopping.set()
    thread.join(5)
    assert not thread.is_alive() and replica.stopped and replica.state == "stopped"


def test_a_first_load_that_fails_is_final_when_the_owner_says_so() -> None:
    """The Ray keeper's rule (its replicas would only fail again): no restart, the replica
    stopped and reported failed, with the model's reason."""
    model = FakeModel(load_error="ValueError: not a model")
    replica, stopping, thread, seen = _supervised(model, lambda r: r.restarts > 0, lambda r: None)
    thread.join(5)
    stopping.set()  # ends it, were it still running
    assert not thread.is_alive() and replica.starts == 1 and replica.stopped
    assert replica.state == "failed" and replica.last_error == "ValueError: not a model"
    assert seen[-1] == "failed"


def test_a_batch_answer_is_split_by_rows_and_each_call_gets_its_own_rows_error() -> None:
    calls = [Call(rows(1, 2), 2, True, 1e12, 5.0), Call(row(3), 1, False, 1e12, 5.0)]
    calls.append(Call(rows(4, 5), 2, False, 1e12, 5.0))
    refused: ErrorRecord = {"type": "ValueError", "message": "bad x0", "input_error": True}
    deliver(
        calls,
        {
            "ok": False,
            "error": refused,
            "isolated": {
                "predictions": [3.0, 5.0, 7.0, None, 11.0],
                "probabilities": [[0.1], [0.2], [0.3], None, [0.5]],
                "errors": [(3, refused)],
            },
        },
    )
    first, second, third = calls
    assert first.result is not None and first.result.predictions == [3.0, 5.0]
    assert first.result.probabilities == [[0.1], [0.2]]  # it asked for them
    assert second.result is not None and second.result.probabilities is None  # it did not
    assert isinstance(third.error, ModelInputError) and "bad x0" in str(third.error)
    found = row_errors(third.error)
    assert found is not None and found.prediction.predictions == [None, 11.0]
    assert list(found.errors) == [0]  # its own first row, not the batch's fourth


def test_a_call_the_model_refused_as_a_whole_gets_its_error_and_no_rows() -> None:
    """Issue 23: the host answered each merged call alone; the second was refused as a whole
    though none of its rows fails alone: the model's error for it, no row's answer attached
    (CSV scoring reports every row), and the others their own answers."""
    calls = [Call(row(1), 1, False, 1e12, 5.0), Call(rows(2, 3), 2, False, 1e12, 5.0)]
    calls.append(Call(row(4), 1, False, 1e12, 5.0))
    batch: ErrorRecord = {"type": "ValueError", "message": "the batch", "input_error": True}
    whole: ErrorRecord = {"type": "ValueError", "message": "one format", "input_error": True}
    deliver(
        calls,
        {
            "ok": False,
            "error": batch,
            "isolated": {
                "predictions": [2.0, None, None, 5.0],
                "errors": [],
                "refused": [(1, whole)],
            },
        },
    )
    first, second, third = calls
    assert first.result is not None and first.result.predictions == [2.0]
    assert third.result is not None and third.result.predictions == [5.0]
    assert isinstance(second.error, ModelInputError) and "one format" in str(second.error)
    assert row_errors(second.error) is None


def test_rows_refused_alone_run_alone_next_time_and_never_change_an_answer() -> None:
    """Issue 23: a call refused by the model without other calls' rows is remembered; the
    next call of the same rows is ``solo`` (never merged, so it cannot fail a batch of good
    calls); other rows merge as before."""
    refused: ErrorRecord = {"type": "ValueError", "message": "bad", "input_error": True}
    bug: ErrorRecord = {"type": "RuntimeError", "message": "bug", "input_error": False}
    first = Call(row(-7.5), 1, False, 1e12, 5.0)
    assert not first.solo
    deliver([first], {"ok": False, "error": refused})
    assert isinstance(first.error, ModelInputError)
    assert Call(row(-7.5), 1, False, 1e12, 5.0).solo
    assert not Call(row(-7.25), 1, False, 1e12, 5.0).solo
    crashed = Call(row(-6.5), 1, False, 1e12, 5.0)
    deliver([crashed], {"ok": False, "error": bug})  # not the rows' fault: not remembered
    assert not Call(row(-6.5), 1, False, 1e12, 5.0).solo


def test_a_local_replica_without_a_host_raises_host_gone_not_a_builtin() -> None:
    """``Replica`` (no process is spawned here): a call before any host, or a start after
    ``stop``, is ``HostGone``, which the supervisor classifies as a crash."""
    replica = Replica(0, ModelSpec())
    with pytest.raises(HostGone, match="not running"):
        replica.predict({"matrix": np.zeros((1, 2))}, False, timeout=1.0)
    replica.stop()
    assert replica.state == "stopped"
    failure = supervisor.start(replica, 1.0)
    assert isinstance(failure, supervisor.Failure) and failure.kind == "crash", failure
    assert replica.pid is None  # nothing was spawned


def test_a_restarted_replica_keeps_its_last_error_and_says_when(pools: Any) -> None:
    """A new user's finding (issue 23): /health said last_error "" right after a replica's
    host died and was restarted, so nobody could see why it had restarted."""
    model = FakeModel()
    pool = pools(model)
    replica = model.replicas[0]
    assert pool.health().replicas[0].last_error == ""
    assert pool.health().replicas[0].last_error_at == ""
    replica.die()
    wait_until(lambda: replica.restarts == 1 and replica.state == "ready", 5)
    (health,) = pool.health().replicas
    assert health.state == "ready" and health.last_error, health
    assert health.last_error_at.endswith("+00:00"), health
    assert pool.predict(row(1)).predictions == [answer(1)]

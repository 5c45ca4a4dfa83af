"""Other users keep their latency while a CSV file is scored (issue 29), with fake replicas and
no process: the pool takes interactive calls before a job's chunks waiting, never merges a
chunk with them, and a job sizes its chunks from the model's measured cost."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeModel, answer, ended_job, row, rows
from tests.helpers import wait_until
from winserve.backends import pool as pool_module
from winserve.backends.pool import PoolBackend
from winserve.scoring import chunk_size
from winserve.scoring.chunk_size import ChunkSize

pytestmark = pytest.mark.timeout(60)


def _ready(model: FakeModel, made: list[PoolBackend], **options: Any) -> PoolBackend:
    pool = model.pool(**options)
    made.append(pool)
    pool.wait_ready(5)
    return pool


def _in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target(*args)), daemon=True)
    thread.start()
    return thread, out


# -- the pool: interactive calls first --------------------------------------------------------


def test_an_interactive_call_goes_before_the_chunks_waiting(pools: list[PoolBackend]) -> None:
    model = FakeModel(latency=0.1)
    pool = _ready(model, pools)
    first, _ = _in_thread(pool.predict_background, rows(*range(10)))  # the chunk running
    wait_until(lambda: model.calls == [10], 5, 0.005)
    queued = []
    for size in (11, 12):  # two more chunks wait behind it, in this order
        queued.append(_in_thread(pool.predict_background, rows(*range(size))))
        wait_until(lambda s=size: pool.health().queue_depth == s - 10, 5, 0.005)
    users = []
    for x0 in (100, 200):  # then two users' requests
        users.append(_in_thread(pool.predict, row(x0)))
        wait_until(lambda x=x0: pool.health().queue_depth == 2 + x // 100, 5, 0.005)
    for thread, _ in [(first, None), *queued, *users]:
        thread.join(10)
    # the users' calls went first, merged together as before, and never with a chunk
    assert model.calls == [10, 2, 11, 12], model.calls
    assert [out[0].predictions for _, out in users] == [[answer(100)], [answer(200)]]
    assert [len(out[0].predictions) for _, out in queued] == [11, 12]


def test_a_user_waits_for_at_most_the_chunk_in_the_model(pools: list[PoolBackend]) -> None:
    """Chunks keep coming back to back (a job's thread sends its next one at once); a user's
    request arriving meanwhile is answered within about one chunk's call."""
    model = FakeModel(latency=0.05)
    pool = _ready(model, pools)
    stop = threading.Event()

    def job() -> None:
        while not stop.is_set():
            pool.predict_background(rows(*range(50)))

    jobs_threads = [threading.Thread(target=job, daemon=True) for _ in range(2)]  # two jobs
    for thread in jobs_threads:
        thread.start()
    try:
        wait_until(lambda: len(model.calls) >= 2, 5, 0.005)
        waits = []
        for x0 in range(5):
            began = time.monotonic()
            assert pool.predict(row(x0)).predictions == [answer(x0)]
            waits.append(time.monotonic() - began)
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in jobs_threads:
            thread.join(5)
    # a chunk's call (50 ms) and the user's own (50 ms); behind the other job's chunk too
    # without the priority (150 ms)
    assert max(waits) < 0.14, waits
    assert 1 in model.calls


def test_a_job_still_moves_when_interactive_calls_always_wait(pools: list[PoolBackend]) -> None:
    """Four users calling back to back, one call each (max_batch_rows=1), keep calls waiting
    at every moment: a chunk goes anyway once it has waited CHUNK_WAIT, where it would time
    out behind them."""
    model = FakeModel(latency=0.02)
    pool = _ready(model, pools, max_batch_rows=1, timeout=3.0)
    stop = threading.Event()

    def user(x0: float) -> None:
        while not stop.is_set():
            assert pool.predict(row(x0)).predictions == [answer(x0)]

    users = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(4)]
    for thread in users:
        thread.start()
    try:
        wait_until(lambda: len(model.calls) >= 5, 5, 0.005)
        waits = []
        for _ in range(3):
            began = time.monotonic()
            assert len(pool.predict_background(rows(*range(30))).predictions) == 30
            waits.append(time.monotonic() - began)
        assert all(thread.is_alive() for thread in users)  # the users kept calling meanwhile
    finally:
        stop.set()
        for thread in users:
            thread.join(5)
    assert max(waits) < pool_module.CHUNK_WAIT + 0.3, waits
    assert min(waits) >= pool_module.CHUNK_WAIT * 0.9, waits  # the users went first until then


def test_a_chunk_alone_in_the_pool_is_called_at_once_and_answered(
    pools: list[PoolBackend],
) -> None:
    model = FakeModel()
    pool = _ready(model, pools)
    assert pool.predict_background(rows(1, 2, 3)).predictions == [answer(1), answer(2), answer(3)]
    assert model.calls == [3]


# -- the chunk size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixed", "per_row", "expected"),
    [
        (0.0015, 3e-6, (0.004 - 0.0015) / 3e-6),  # the demo's logistic regression: ~830
        (0.010, 15e-6, 0.010 / 15e-6),  # a 200-tree forest: twice its fixed cost, ~670
        (0.0003, 0.5e-6, (0.004 - 0.0003) / 0.5e-6),  # very cheap rows: ~7,400
    ],
)
def test_the_chunk_size_follows_the_cost_measured(
    fixed: float, per_row: float, expected: float
) -> None:
    sizes = ChunkSize(most=10_000)
    seen = []
    for _ in range(40):
        seen.append(sizes.rows())
        sizes.observe(seen[-1], fixed + per_row * seen[-1])
    assert seen[0] == chunk_size.FIRST_ROWS
    assert all(b <= 2 * a for a, b in itertools.pairwise(seen))  # grows gently
    settled = seen[-10:]
    assert 0.8 * expected <= statistics.mean(settled) <= 1.2 * expected, seen
    assert sizes.fixed == pytest.approx(fixed) and sizes.per_row == pytest.approx(per_row)


def test_the_chunk_size_adapts_when_the_cost_changes_and_stays_within_bounds() -> None:
    sizes = ChunkSize(most=1600)
    per_row = 2e-6
    seen = []
    for step in range(80):
        if step == 40:  # the machine got busy: rows cost four times as much
            per_row = 8e-6
        seen.append(sizes.rows())
        sizes.observe(seen[-1], 0.001 + per_row * seen[-1])
    assert max(seen[25:40]) == 1600  # (4 - 1) ms / 2 us = 1,500, x 1.15 dithered: the cap
    assert 0.8 * 375 <= statistics.mean(seen[-10:]) <= 1.2 * 375, seen[40:]
    slow = ChunkSize()
    for _ in range(10):
        slow.observe(slow.rows(), 0.002 + 0.001 * slow.rows())  # 1 ms a row
    assert chunk_size.LEAST_ROWS <= slow.rows() <= 1.15 * chunk_size.LEAST_ROWS
    fixed = ChunkSize()
    for _ in range(40):  # every call costs the same: chunks grow to the cap
        fixed.observe(fixed.rows(), 0.3)
    assert fixed.rows() >= 0.85 * chunk_size.MOST_ROWS


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _sizes(sizes: ChunkSize, clock: Clock, users: list[int], steps: int, **kw: Any) -> list[int]:
    """``steps`` chunks of a model whose calls cost 0.2 ms and 1.5 us a row (the demo's, as a
    job's caller thread times them), each 2 ms apart; a user's call before each one while
    ``kw["calling"]``."""
    seen = []
    for _ in range(steps):
        if kw.get("calling"):
            users[0] += 1
        seen.append(sizes.rows())
        sizes.observe(seen[-1], 0.0002 + 1.5e-6 * seen[-1])
        clock.now += 0.002
    return seen


def test_while_users_call_a_jobs_chunks_are_cut_to_a_short_call() -> None:
    """Users' calls wait for the chunk in the model and for the job's steps in the web
    process: while they come, chunks are cut to a call of about 0.5 ms, and they get their
    size back a second after the last."""
    clock, users = Clock(), [0]
    sizes = ChunkSize(most=1000, users=lambda: users[0], clock=clock)
    alone = _sizes(sizes, clock, users, 30)
    assert alone[-1] == 1000  # (4 - 0.2) ms / 1.5 us = 2,533: the cap
    calling = _sizes(sizes, clock, users, 30, calling=True)
    expected = (chunk_size.USERS_TARGET_SECONDS - 0.0002) / 1.5e-6  # 200 rows
    # every other one a quarter larger, so that the slope stays measured
    assert 0.9 * expected <= statistics.mean(calling[-10:]) <= 1.35 * expected, calling
    assert len(set(calling[-10:])) > 1, calling
    clock.now += chunk_size.USERS_SECONDS
    assert _sizes(sizes, clock, users, 10)[-1] == 1000  # users gone: the size comes back


def test_users_from_the_first_chunk_on_still_get_a_measured_size() -> None:
    """A job started while users call: its first call's warm-up (counted per row: 35 us a
    row here) must not keep its chunks at the least for the whole job."""
    clock, users = Clock(), [0]
    sizes = ChunkSize(most=1000, users=lambda: users[0], clock=clock)
    users[0] += 1
    first = sizes.rows()
    sizes.observe(first, 0.009)  # the first call: the model warming up
    seen = _sizes(sizes, clock, users, 40, calling=True)
    assert seen[0] <= 1.25 * chunk_size.LEAST_ROWS, seen  # the first line drawn: small
    expected = (chunk_size.USERS_TARGET_SECONDS - 0.0002) / 1.5e-6
    assert statistics.mean(seen[-10:]) >= 0.9 * expected, seen


def test_calls_that_cost_the_same_whatever_their_rows_on_a_busy_machine_do_not_grow_chunks() -> (
    None
):
    """A model whose rows are dear (2 ms a call, 20 us a row) on a machine that gets busy:
    the calls' times stop following their rows (waits), which once read as "no cost per
    row" and let the chunks climb to the most (a 25 ms call ahead of every user)."""
    sizes = ChunkSize(most=1000)
    for _ in range(30):
        rows = sizes.rows()
        sizes.observe(rows, 0.002 + 20e-6 * rows)
    settled = sizes.rows()
    assert settled < 200  # (4 - 2) ms / 20 us = 100, dithered
    seen = []
    for _ in range(30):  # every call 6 ms, whatever its rows: noise
        seen.append(sizes.rows())
        sizes.observe(seen[-1], 0.006)
    assert max(seen) < 2 * settled, seen
    # the cost per row measured falls a STEP a window of calls at most
    assert sizes.per_row > 20e-6 / chunk_size.STEP**2


class ModelTime:
    """A clock that moves only by the model's simulated calls: each call of ``rows`` rows
    costs ``fixed + per_row * rows`` seconds. The job times its chunks by it, so the sizes it
    chooses depend on the model's cost alone, not on the machine's timer slack or load (the
    fake's real sleeps overshot on a busy machine, and the test failed after others)."""

    def __init__(self, model: FakeModel, fixed: float, per_row: float) -> None:
        self.model, self.fixed, self.per_row = model, fixed, per_row

    def __call__(self) -> float:
        with self.model.lock:
            calls = list(self.model.calls)
        return sum(self.fixed + self.per_row * rows for rows in calls)


def _score(folder: Path, lines: int, per_row: float) -> list[int]:
    """A CSV job of ``lines`` rows scored through a pool of fake replicas whose calls cost
    1 ms and ``per_row`` a row (in the model's time, ``ModelTime``); the rows of each call."""
    model = FakeModel()
    with ended_job(folder, lines, 50, model, clock=ModelTime(model, 0.001, per_row)) as job:
        assert job.state == "done" and job.scored_rows == lines, job.status()
        scored = job.result.read_text(encoding="utf-8-sig").splitlines()
        assert scored[1].startswith("0,1,1.0,") and scored[8].startswith("0,1,1.0,")
    assert sum(model.calls) == lines
    return model.calls


def test_a_job_sizes_its_chunks_from_the_models_cost(tmp_path: Path) -> None:
    """Two models, the same file: the one whose rows cost four times as much gets chunks
    about four times smaller, each call near the target (4 ms)."""
    cheap = _score(tmp_path / "a", 12_000, 4e-6)
    dear = _score(tmp_path / "b", 4_000, 16e-6)
    assert cheap[0] == dear[0] == chunk_size.FIRST_ROWS
    # (4 - 1) ms / 4 us = 750 rows, / 16 us = 190 (the sizes dither 10 % around them, up
    # and down in turn: their mean, as a median of an odd count would pick one side)
    cheap_size, dear_size = statistics.mean(cheap[4:-1]), statistics.mean(dear[4:-1])
    assert 0.85 * 750 <= cheap_size <= 1.15 * 750, cheap
    assert 0.85 * 187.5 <= dear_size <= 1.15 * 187.5, dear
    assert 3.4 < cheap_size / dear_size < 4.6, (cheap, dear)


def test_a_failed_job_counts_only_the_rows_it_wrote(tmp_path: Path) -> None:
    """A job that fails on a later chunk (here: more rows than allowed) reports the rows it
    scored and wrote, never more scored than done."""
    with ended_job(tmp_path, 6_000, 30, max_rows=2_500) as job:
        status = job.status()
        assert job.state == "failed" and "more than the 2500 allowed" in status["error"], status
        assert 0 < status["scored_rows"] <= status["done_rows"] <= 2_500, status


def test_a_jobs_calls_run_ahead_of_its_writing_and_end_with_it(tmp_path: Path) -> None:
    """The next chunk's model call is made by the job's caller thread while the last chunk
    is written (scoring/ahead.py): the lines still come out in the file's order, a row the
    model refuses still gets its own reason in its own line, and no caller thread outlives
    the job."""
    model = FakeModel(refuse=3.0)
    with ended_job(tmp_path, 5_000, 30, model) as job:
        assert job.state == "done", job.status()
        lines = job.result.read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 5_001 and len(model.calls) > 5  # several chunks
    for number, line in enumerate(lines[1:], start=2):
        x0 = (number - 2) % 7
        assert line.startswith(f"{x0},1,"), (number, line)
        assert (x0 == 3) == bool(line.split(",")[-2]), (number, line)  # the error cell
        assert line.endswith(f"-{number}"), line  # its own request id, in order
    assert job.scored_rows == 5_000 - len([i for i in range(5_000) if i % 7 == 3])
    assert not [t for t in threading.enumerate() if t.name.startswith("winserve-job-call")]

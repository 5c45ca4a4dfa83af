"""The pool's queues (``backends/queues.py``, issue 23): what a dispatcher takes for one model
call, without a pool, a thread or a process.

Users' calls go first and merge up to ``max_batch_rows``; a job's chunk goes alone, after
them, unless it has waited ``CHUNK_WAIT``; a call whose caller gave up is dropped and one past
its deadline answered 504 without reaching the model; a crashed batch goes back in order.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from winserve.backends import queues
from winserve.backends.batch import Call
from winserve.backends.queues import Waiting
from winserve.errors import ModelTimeout

pytestmark = pytest.mark.timeout(30)


def _call(rows: int = 1, *, background: bool = False, deadline: float | None = None) -> Call:
    """A call queued now (its deadline 30 s away unless given)."""
    payload = {"matrix": np.zeros((rows, 2))}
    when = time.monotonic() + 30.0 if deadline is None else deadline
    return Call(payload, rows, False, when, 30.0, background=background)


def test_users_calls_merge_up_to_max_batch_rows_and_go_before_a_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queues, "CHUNK_WAIT", 60.0)  # however slow the machine
    waiting = Waiting(max_batch_rows=4, max_batch_bytes=1 << 20)
    chunk = _call(50, background=True)
    users = [_call(2), _call(1), _call(3)]
    for call in [chunk, *users]:
        waiting.put(call)
    assert len(waiting) == 4
    assert waiting.take() == (users[:2], 3)  # 3 rows: the next (3 more) would pass 4
    assert waiting.take() == (users[2:], 3)
    assert waiting.take() == ([chunk], 50)  # no user waits: the chunk, alone
    assert waiting.take() == ([], 0) and not waiting


def test_a_chunk_that_has_waited_chunk_wait_goes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queues, "CHUNK_WAIT", 60.0)
    waiting = Waiting(max_batch_rows=256, max_batch_bytes=1 << 20)
    chunk = _call(10, background=True)
    waiting.put(chunk)
    waiting.put(user := _call())
    assert waiting.take() == ([user], 1)  # a fresh chunk lets the user go first
    waiting.put(user := _call())
    monkeypatch.setattr(queues, "CHUNK_WAIT", 0.0)  # it has waited long enough
    assert waiting.take() == ([chunk], 10)
    assert waiting.take() == ([user], 1)


def test_two_chunks_never_share_a_call() -> None:
    waiting = Waiting(max_batch_rows=256, max_batch_bytes=1 << 20)
    first, second = _call(5, background=True), _call(5, background=True)
    waiting.put(first)
    waiting.put(second)
    assert waiting.take() == ([first], 5)
    assert waiting.take() == ([second], 5)


def test_given_up_calls_are_dropped_and_late_ones_answered_504() -> None:
    waiting = Waiting(max_batch_rows=256, max_batch_bytes=1 << 20)
    gone, late, fine = _call(), _call(deadline=time.monotonic() - 1), _call()
    gone.resolve(error=ModelTimeout("the caller gave up"))
    late_chunk = _call(background=True, deadline=time.monotonic() - 1)
    for call in (gone, late, fine, late_chunk):
        waiting.put(call)
    assert waiting.take() == ([fine], 1)
    assert isinstance(late.error, ModelTimeout) and "timeout" in str(late.error)
    assert waiting.take() == ([], 0)  # the late chunk answered, not taken
    assert isinstance(late_chunk.error, ModelTimeout)


def test_a_solo_call_is_never_merged() -> None:
    waiting = Waiting(max_batch_rows=256, max_batch_bytes=1 << 20)
    before, solo, after = _call(), _call(), _call()
    solo.solo = True
    for call in (before, solo, after):
        waiting.put(call)
    # the call behind it joins the batch before it (issue 23); the solo call goes next, alone
    assert waiting.take() == ([before, after], 2)
    assert waiting.take() == ([solo], 1)
    assert waiting.take() == ([], 0)
    waiting.put(solo)
    waiting.put(after)
    assert waiting.take() == ([solo], 1)  # first in the queue: alone, first
    assert waiting.take() == ([after], 1)


def test_a_crashed_batch_goes_back_first_in_order_and_drain_empties_both() -> None:
    waiting = Waiting(max_batch_rows=256, max_batch_bytes=1 << 20)
    queued, chunk = _call(), _call(3, background=True)
    waiting.put(queued)
    crashed = [_call(), _call(2), _call(4, background=True)]
    waiting.requeue(crashed)
    assert list(waiting.interactive) == [*crashed[:2], queued]
    assert list(waiting.background) == [crashed[2]]
    waiting.put(chunk)
    assert waiting.drain() == [*crashed[:2], queued, crashed[2], chunk]
    assert not waiting


def test_tensors_of_alternating_shapes_merge_by_shape_each_first_in_line_kept() -> None:
    """Calls of two shapes queued in turn: each model call takes the first call waiting and
    the calls of its shape behind it; the others keep their order for the next (every call
    was a model call of its own when a shape in between stopped the merging)."""
    waiting = Waiting(max_batch_rows=256, max_batch_bytes=1 << 20)

    def tensor(shape: tuple[int, ...]) -> Call:
        payload = {"tensors": {"x": np.zeros((1, *shape), dtype=np.float32)}}
        return Call(payload, 1, False, time.monotonic() + 30.0, 30.0)

    calls = [tensor((100,) if i % 2 else (2, 5)) for i in range(6)]
    for call in calls:
        waiting.put(call)
    assert waiting.take() == ([calls[0], calls[2], calls[4]], 3)
    assert waiting.take() == ([calls[1], calls[3], calls[5]], 3)
    assert waiting.take() == ([], 0)

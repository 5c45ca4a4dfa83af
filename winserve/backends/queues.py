"""The calls waiting in a pool: the interactive queue, a CSV job's chunks apart, and what a
dispatcher takes from them for one model call.

::

    PoolBackend._submit ── put(call) ──► interactive  deque[Call]   (POST /predict, the page…)
                                    └─► background   deque[Call]   (predict_background: a CSV
                                                                    job's chunks, issue 29)
    a dispatcher ◄── take(max_rows, max_bytes) ── every interactive call waiting that fits one
                                                  model call (rows, tensor shapes, bytes), else
                                                  one chunk alone; a chunk that has waited
                                                  CHUNK_WAIT goes first
    close / a crashed batch ── drain() / requeue(calls)

Interactive calls go first (issue 29): a job's chunk is taken only when no interactive call
waits, and is never merged with interactive calls (they would wait for its rows) nor with
another job's chunk. A chunk running is not interrupted: a user waits at most the chunk in
the model, which the job sizes to a few ms (``scoring.chunk_size``). A chunk that has waited
``CHUNK_WAIT`` goes before the interactive calls: under a load that always has calls waiting,
a job still moves (a chunk every ``CHUNK_WAIT``) instead of its chunks timing out.

A call whose caller gave up is dropped when met; one past its deadline is answered 504
without reaching the model (time queued is the caller's, never the replica's: issue 13).
Not thread-safe by itself: the pool calls it under its own condition, which also guards
which replicas are busy.
"""

from __future__ import annotations

import collections
import time

from winserve.backends.batch import Call

# the longest a job's chunk lets interactive calls go first (issue 29): a user waits behind
# a chunk at most once in that time, and a job under a saturating load still gets a share
CHUNK_WAIT = 0.25


class Waiting:
    """The pool's two queues (under the pool's condition)."""

    def __init__(self, max_batch_rows: int, max_batch_bytes: int) -> None:
        self.interactive: collections.deque[Call] = collections.deque()
        # scoring jobs' chunks, taken only when no interactive call waits (issue 29)
        self.background: collections.deque[Call] = collections.deque()
        self._max_rows = max_batch_rows
        self._max_bytes = max_batch_bytes

    def __len__(self) -> int:
        return len(self.interactive) + len(self.background)

    def put(self, call: Call) -> None:
        (self.background if call.background else self.interactive).append(call)

    def requeue(self, calls: list[Call]) -> None:
        """``calls`` back at the front of their queues, in order (a crashed batch's retry)."""
        self.interactive.extendleft(reversed([c for c in calls if not c.background]))
        self.background.extendleft(reversed([c for c in calls if c.background]))

    def drain(self) -> list[Call]:
        """Every call waiting; the queues emptied."""
        pending = [*self.interactive, *self.background]
        self.interactive.clear()
        self.background.clear()
        return pending

    def take(self) -> tuple[list[Call], int]:
        """The next model call's calls and their rows: a starved chunk, else every interactive
        call that fits, else one chunk; ([], 0) when nothing is wanted."""
        if self.background and self._starved():  # its turn, whoever waits
            calls, rows = self.take_chunk()
            if calls:
                return calls, rows
        calls, rows = self.take_batch([], 0)
        if calls:
            return calls, rows
        return self.take_chunk()  # no interactive call waits: a job's chunk, alone

    def take_batch(self, calls: list[Call], rows: int) -> tuple[list[Call], int]:
        """``calls`` with the interactive calls waiting that may join them (up to
        ``max_batch_rows``; a solo call alone, the calls behind it joining others)."""
        now = time.monotonic()
        queue = self.interactive
        # solo calls met behind the batch's first stay in place, first for the next call: the
        # calls behind them still merge (issue 23: one bad request's rows, refused lately and
        # so solo, between each good one made every good one a model call of its own)
        skipped = 0
        while len(queue) > skipped:
            call = queue[skipped]
            if call.done:  # its caller gave up
                del queue[skipped]
                continue
            if call.deadline <= now:
                del queue[skipped]
                call.resolve(error=call.timed_out())
                continue
            if calls and call.solo and not calls[0].solo:
                skipped += 1
                continue
            if calls and (calls[0].solo or rows + call.rows > self._max_rows):
                break
            if calls and call.key != calls[0].key:
                # tensors of another shape stay in place, first for the next call: the calls
                # of this shape behind them still merge (shapes that alternated in the queue
                # made every call a model call of its own)
                skipped += 1
                continue
            if calls and not self._joins(calls, call):
                break
            del queue[skipped]
            calls.append(call)
            rows += call.rows
        return calls, rows

    def take_chunk(self) -> tuple[list[Call], int]:
        """The first job's chunk still wanted: one call, never merged (two jobs' chunks
        together would make a user wait for both)."""
        now = time.monotonic()
        while self.background:
            call = self.background.popleft()
            if call.done:
                continue
            if call.deadline <= now:
                call.resolve(error=call.timed_out())
                continue
            return [call], call.rows
        return [], 0

    def _starved(self) -> bool:
        """Whether the first chunk waiting has let interactive calls go first long enough."""
        first = self.background[0]
        return time.monotonic() - (first.deadline - first.timeout) >= CHUNK_WAIT

    def _joins(self, calls: list[Call], call: Call) -> bool:
        """Whether ``call``, of the same per-row shapes as ``calls`` (``take_batch`` checked),
        keeps the model call's tensors within ``max_batch_bytes`` (issue 24)."""
        taken = sum(c.nbytes for c in calls)
        return not call.nbytes or taken + call.nbytes <= self._max_bytes

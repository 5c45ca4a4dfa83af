"""How many rows a scoring job sends in one model call, from the model's measured cost (issue 29).

::

    RowScorer._predict ── each chunk's rows and the seconds its model call took (the model
        host's own clock: the wait for the web process's GIL is not the model's) ──► observe
        a line through the last WINDOW calls: seconds = fixed + per_row × rows (least squares)
    csv_scoring / workbook_scoring ◄── rows(): the rows whose call takes about TARGET_SECONDS,
        or SLOW_FACTOR times the fixed cost when that is more (a model whose every call is
        slow), between LEAST_ROWS and the job's cap (MOST_ROWS: 1,000, the fixed size of
        before), changing by at most STEP from one chunk to the next (growing twice as fast
        until a first line is drawn);
        while users' calls come (Service.interactive_calls changed in the last USERS_SECONDS),
        no more than the rows of a USERS_TARGET_SECONDS call (``users_rows``)

Why: the pool lets a user's request go before every chunk waiting (``backends.pool``), but it
does not interrupt the chunk the model is computing, so a user waits for at most about one
chunk's call. 1,000-row chunks made that 25 ms for a 200-tree forest, and a chunk so small
that the call's fixed cost (the process hop, the model's own checks) dominates would cost the
job its rows per second. A model whose every call costs more than half the target gets calls
of twice its fixed cost: a user, whose own call costs about that fixed cost, waits about two
of his own calls at most for the chunk ahead of him.

Measured (bench/csv_scoring.py, 100,000 rows, the team's 2-core machine at load 2-4): other
users' p50 is set by CPU contention more than by the chunk ahead (the demo's is 4 ms with no
job on that machine, 13-20 ms during one, whatever the chunk size from 250 to 4,000 rows), and
chunks larger than 1,000 rows (up to 10,000 allowed) made the forest's users wait 35-100 %
longer for +27 % rows/s; 1.5 times the fixed cost, -12 % rows/s and no better p50. So 1,000
rows stays the most, which the demo and the forest reach: the size only shrinks the chunks of
a model whose rows are dear. Such a model (2 ms a call and 20 us a row, tests.models.row_cost)
gets ~150-row chunks of ~6 ms: other users' p50 8.5-9.7 ms against 11.6-26.6 with 1,000-row
chunks, for 19-21,000 rows/s against 29-32,000 (-35 %: the fixed cost of the calls). Four
times the fixed cost kept the rows/s (-10 %) but not the users' p50 (14-16 ms): the trade is
this module's to make, and its choice is the users'.

While users come: since the next chunk's call is made while the last chunk is written (the
job's caller thread, ``ahead.py``), a chunk's fixed cost is mostly hidden, and the job's web
work (reading, writing) runs in steps as small as its chunks. Measured (the demo, 100,000 rows,
a user every 10 ms from another process, 3 jobs; ``/predict`` p50 with no job 1.4-1.9 ms):
1,000-row chunks, users' p50 6.2-6.9 ms (their wait in the pool 1.9 ms, in the web process
3.3 ms); 250 rows, 3.8-4.9 ms (1.1 and 1.8); 128 rows, 2.9 ms; the job alone takes as long with
250-row chunks as with 1,000 (0.45-0.46 s in process), 128 rows +15 %, 64 rows +55 %. So a
chunk is cut to a call of about 0.5 ms while users' calls come, and keeps its size otherwise.

The sizes alternate a little above and below the one wanted (``DITHER``), so that the line's
two terms stay measurable while the job runs, and follow the model's cost when the machine
gets busier or quieter.

A busy machine: a call's time is the model's cost plus waits (users' calls, other processes),
which only ever add. The line is drawn through the calls the least waited (``_fit``), a first
line only through FIT_CALLS calls, the cost per row then moves a STEP a call at most, and the
fixed cost is the least a call cost beyond its rows. Simulated (a model of 2 ms and 20 us a
row, 40,000 rows, every other call waiting an exponential 4 ms on average, 2,000 jobs): jobs
that made a 1,000-row chunk (a 22 ms call ahead of every user) 1,181 with the least-squares
line through all the calls, 13 with this one; the median size 218 rows against 112 (100 wanted:
(4 - 2) ms / 20 us).

In step with the notebook: BLAS computes a matrix product a few rows at a time (4 here,
AVX-512), and the last rows of a matrix that make no whole block are computed otherwise, to
other last float digits. A job's chunks are column-major (``rows.COLUMN_MAJOR``: as
``pandas.read_csv`` holds a file's numbers) and a multiple of ALIGN rows, so no chunk but the
last has such rows, and the last has those of the notebook's whole file: measured on a
5,000 and a 4,000 x 12 file, ``predict`` and ``predict_proba`` of a binary LogisticRegression, a
LinearRegression, a Ridge, LDA, GaussianNB, SGD, an MLP, PCA + LogisticRegression and
PolynomialFeatures + Lasso equal ``model.predict(pd.read_csv(f))`` on every row in chunks of
any multiple of 4 rows tried (4 to 1,008); in chunks of 250 or 731, 6-32 rows differ, and
row-major chunks of 1,000, 43-3,059 rows. A blank or refused row leaves its chunk up to 3 such
rows, and as many at the file's end.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

TARGET_SECONDS = 0.004  # a chunk's model call, when the model's fixed cost allows it
# while users' calls come (any in the last USERS_SECONDS): a chunk's call when the model's
# fixed cost allows it (see "While users come" above)
USERS_TARGET_SECONDS = 0.0005
USERS_SECONDS = 1.0
LEAST_ROWS = 64
MOST_ROWS = 1_000  # the chunk of before: larger ones measured no better (see above)
SLOW_FACTOR = 2.0  # a slow model's chunk call, in its fixed costs
FIRST_ROWS = 256  # before anything is measured: 14 ms for the 200-tree forest, 2 ms for the demo
WINDOW = 16  # calls the line is fitted on
FIT_CALLS = 3  # the calls of two sizes at least a first line is drawn through (two: noise)
DITHER = (0.9, 1.1)
STEP = 1.25  # the most a size changes from one chunk to the next (up or down)
# a chunk's rows are a multiple of it, so that each chunk starts where the notebook's whole
# matrix has a row of the same place in BLAS's blocks (see "In step with the notebook"): twice
# the block measured here; MOST_ROWS is one
ALIGN = 8


def aligned(rows: int) -> int:
    """``rows`` down to a multiple of ALIGN (from ALIGN rows up)."""
    return rows if rows < ALIGN else rows - rows % ALIGN


class ChunkSize:
    """The rows of a job's next chunk (``rows``), from the seconds its calls took
    (``observe``); ``most``: the job's cap (its ``Bounds.chunk_rows``)."""

    def __init__(
        self,
        most: int = MOST_ROWS,
        *,
        target: float = TARGET_SECONDS,
        least: int = LEAST_ROWS,
        first: int = FIRST_ROWS,
        users: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.most = max(1, most)
        self.least = min(least, self.most)
        self.target = target
        self._users = users  # a count of users' model calls (Service.interactive_calls)
        self._clock = clock
        self._users_seen = users()
        self._users_until = float("-inf")  # users' calls came until about then
        self._users_turn = 0
        self.fixed = 0.0  # seconds of a call whatever its rows (the last fit's)
        self.per_row = 0.0  # seconds per row (the last fit's)
        self._seen: collections.deque[tuple[int, float]] = collections.deque(maxlen=WINDOW)
        self._next = min(max(first, self.least), self.most)
        self._turn = 0
        self._warm = False  # the first call was seen
        self._sized = False  # a line was drawn through calls of two sizes at least
        self._settled: int | None = None  # the size before its dither

    def rows(self) -> int:
        """The next chunk's rows: those whose call takes about the target, fewer while
        users' calls come (``users_rows``), a multiple of ALIGN."""
        seen = self._users()
        now = self._clock()
        if seen != self._users_seen:
            self._users_seen, self._users_until = seen, now + USERS_SECONDS
        if now < self._users_until:
            # every other chunk a quarter larger: at the least, sizes still differ, and the
            # line's slope is measured (one size seen, a first call's warm-up counted per row
            # kept 64-row chunks for a whole job)
            self._users_turn ^= 1
            size = min(self._next, self.users_rows())
            return aligned(min(self.most, size + self._users_turn * max(1, size // 4)))
        return aligned(self._next)

    def users_rows(self) -> int:
        """The rows whose call takes about USERS_TARGET_SECONDS (or SLOW_FACTOR times the
        fixed cost, when that is more), at least ``least``; nothing measured yet: the next
        size."""
        if not self._settled or self.per_row <= 0:
            return self._next
        budget = max(USERS_TARGET_SECONDS, SLOW_FACTOR * self.fixed)
        return max(self.least, int((budget - self.fixed) / self.per_row))

    def observe(self, rows: int, seconds: float) -> None:
        """A chunk's model call of ``rows`` rows took ``seconds``: the next chunk's size."""
        if rows <= 0 or seconds <= 0:
            return
        # the job's first call sizes the second only: it may hold the model's warm-up (a
        # first call 4x slower kept the line's slope wrong for WINDOW calls)
        first = not self._seen and not self._warm
        self._warm = True
        self._seen.append((rows, seconds))
        fixed, per_row = self._fit()
        ready = len(self._seen) >= FIT_CALLS and len({r for r, _ in self._seen}) > 1
        if self._sized:
            if self.per_row > 0 and per_row > 0:
                # a STEP a call: on a busy machine a window's slope is still noisy (the sizes
                # differ by a fifth, the waits by more), and a slope near 0 let the sizes
                # climb to the most ahead of every user
                per_row = min(max(per_row, self.per_row / STEP), self.per_row * STEP)
            if per_row > 0:
                # waits only ever add to a call's time: the fixed cost is the least a call of
                # the window cost beyond its rows, not their mean (which made a busy
                # machine's chunks larger: twice a fixed cost full of waits)
                fixed = max(0.0, min(s - per_row * r for r, s in self._seen))
        elif not first and not ready:  # too few calls for a line: the first call's figures
            fixed, per_row = self.fixed, self.per_row
        self._sized = self._sized or ready
        self.fixed, self.per_row = fixed, per_row
        if first:
            self._seen.clear()
        budget = max(self.target, SLOW_FACTOR * self.fixed)
        # no measurable cost per row (a model whose calls cost the same whatever their rows):
        # larger chunks cost the users nothing more
        wanted = (budget - self.fixed) / self.per_row if self.per_row > 0 else float(self.most)
        # a step at a time (STEP), after the first call: a noisy fit must not swing the sizes,
        # since a user's wait grows with the sizes' spread as well as their mean (sizes of
        # 64-2,000 rows around the same mean made the forest's other users wait 40 % longer)
        # Until a first line is drawn, growing may go faster (twice): the small sizes of a
        # start cost calls.
        if self._settled is not None:
            wanted = min(
                max(wanted, self._settled / STEP), self._settled * (STEP if self._sized else 2)
            )
        elif first:  # one call measured: half its size at least, so the line can be drawn
            # (all of it counted per row, a forest's 256 rows made 64-row chunks, and 13 calls
            # to climb back to 1,000 rows)
            wanted = max(wanted, rows // 2)
        size = max(self.least, min(self.most, 2 * rows, int(wanted)))
        self._settled = size
        # dithered after the bounds (at the least, sizes still differ); not at the most, where
        # the chunks of a cheap model stay whole (the line's slope is then kept, _fit)
        self._turn ^= 1
        if size < self.most:
            size = min(self.most, 2 * rows, int(size * DITHER[self._turn]))
        self._next = max(self.least, size)

    def _fit(self) -> tuple[float, float]:
        """(fixed, per_row) seconds: the line under the calls seen. Waits (users' calls, a
        busy machine) only ever add to a call's time, so the line is drawn through the calls
        at or below the least-squares line of them all: the least waited (through all of them,
        a few calls that waited made the slope anything, and an early slope near 0 let the
        sizes climb to the most). With one size seen, the last line's slope is kept and the
        fixed cost follows the times; with none before, every second is counted per row (errs
        on the small side: the next size differs, and the line is measured). Calls of several
        sizes that cost the same (or less with more rows) are all fixed cost, unless a cost
        per row was measured before: then that is noise, and the cost per row stays."""
        seen = list(self._seen)
        line = _least_squares(seen)
        if line is None:  # one size
            mean_rows, mean_seconds = seen[0][0], sum(s for _, s in seen) / len(seen)
            if self._settled is None:
                return 0.0, mean_seconds / mean_rows
            return max(0.0, mean_seconds - self.per_row * mean_rows), self.per_row
        fixed, slope = line
        lower = _least_squares([(r, s) for r, s in seen if s <= fixed + slope * r])
        if lower is not None:
            fixed, slope = lower
        if slope <= 0:
            least = min(s for _, s in seen)
            if self._sized and self.per_row > 0:
                return max(0.0, least - self.per_row * min(r for r, _ in seen)), self.per_row
            return least, 0.0
        return max(0.0, fixed), slope


def _least_squares(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """(intercept, slope) of the least-squares line through (rows, seconds) points; ``None``
    when they are of one size."""
    if not points:
        return None
    count = len(points)
    mean_rows = sum(r for r, _ in points) / count
    mean_seconds = sum(s for _, s in points) / count
    spread = sum((r - mean_rows) ** 2 for r, _ in points)
    if not spread:
        return None
    slope = sum((r - mean_rows) * (s - mean_seconds) for r, s in points) / spread
    return mean_seconds - slope * mean_rows, slope

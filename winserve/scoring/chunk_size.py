"""How many rows a scoring job sends in one model call, from the model's measured cost (issue 29).

::

    RowScorer._call ── each chunk's rows and the seconds its model call took ──► observe
        a line through the last WINDOW calls: seconds = fixed + per_row × rows (least squares)
    csv_scoring / workbook_scoring ◄── rows(): the rows whose call takes about TARGET_SECONDS,
        or SLOW_FACTOR times the fixed cost when that is more (a model whose every call is
        slow), between LEAST_ROWS and the job's cap (MOST_ROWS: 1,000, the fixed size of
        before), shrinking by at most STEP and growing at most twice from one chunk to the next

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

The sizes alternate a little above and below the one wanted (``DITHER``), so that the line's
two terms stay measurable while the job runs, and follow the model's cost when the machine
gets busier or quieter.
"""

from __future__ import annotations

import collections

TARGET_SECONDS = 0.004  # a chunk's model call, when the model's fixed cost allows it
LEAST_ROWS = 64
MOST_ROWS = 1_000  # the chunk of before: larger ones measured no better (see above)
SLOW_FACTOR = 2.0  # a slow model's chunk call, in its fixed costs
FIRST_ROWS = 256  # before anything is measured: 14 ms for the 200-tree forest, 2 ms for the demo
WINDOW = 16  # calls the line is fitted on
DITHER = (0.9, 1.1)
STEP = 1.25  # the most a size changes from one chunk to the next (up or down)


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
    ) -> None:
        self.most = max(1, most)
        self.least = min(least, self.most)
        self.target = target
        self.fixed = 0.0  # seconds of a call whatever its rows (the last fit's)
        self.per_row = 0.0  # seconds per row (the last fit's)
        self._seen: collections.deque[tuple[int, float]] = collections.deque(maxlen=WINDOW)
        self._next = min(max(first, self.least), self.most)
        self._turn = 0
        self._warm = False  # the first call was seen
        self._settled: int | None = None  # the size before its dither

    def rows(self) -> int:
        return self._next

    def observe(self, rows: int, seconds: float) -> None:
        """A chunk's model call of ``rows`` rows took ``seconds``: the next chunk's size."""
        if rows <= 0 or seconds <= 0:
            return
        # the job's first call sizes the second only: it may hold the model's warm-up (a
        # first call 4x slower kept the line's slope wrong for WINDOW calls)
        first = not self._seen and not self._warm
        self._warm = True
        self._seen.append((rows, seconds))
        self.fixed, self.per_row = self._fit()
        if first:
            self._seen.clear()
        budget = max(self.target, SLOW_FACTOR * self.fixed)
        # no measurable cost per row (a model whose calls cost the same whatever their rows):
        # larger chunks cost the users nothing more
        wanted = (budget - self.fixed) / self.per_row if self.per_row > 0 else float(self.most)
        # a step at a time (STEP), after the first call: a noisy fit must not swing the sizes,
        # since a user's wait grows with the sizes' spread as well as their mean (sizes of
        # 64-2,000 rows around the same mean made the forest's other users wait 40 % longer)
        # Growing may go faster (twice, as below): the small sizes of a start cost calls.
        if self._settled is not None:
            wanted = min(max(wanted, self._settled / STEP), self._settled * 2)
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
        """(fixed, per_row) seconds: the least-squares line through the calls seen. With one
        size seen, the last line's slope is kept and the fixed cost follows the times; with
        none before, every second is counted per row (errs on the small side: the next size
        differs, and the line is measured). Calls of several sizes that cost the same (or
        less with more rows: noise) are all fixed cost."""
        count = len(self._seen)
        mean_rows = sum(r for r, _ in self._seen) / count
        mean_seconds = sum(s for _, s in self._seen) / count
        spread = sum((r - mean_rows) ** 2 for r, _ in self._seen)
        if not spread:
            if self._settled is None:
                return 0.0, mean_seconds / mean_rows
            return max(0.0, mean_seconds - self.per_row * mean_rows), self.per_row
        slope = sum((r - mean_rows) * (s - mean_seconds) for r, s in self._seen) / spread
        if slope <= 0:
            return mean_seconds, 0.0
        return max(0.0, mean_seconds - slope * mean_rows), slope

"""How many rows a scoring job sends in one model call, from the model's measured cost (issue 29).

::

    RowScorer._call ── each chunk's rows and the seconds its model call took ──► observe
        a line through the last WINDOW calls: seconds = fixed + per_row × rows (least squares)
    csv_scoring / workbook_scoring ◄── rows(): the rows whose call takes about TARGET_SECONDS,
        or twice the fixed cost when that is more (a model whose every call is slow), between
        LEAST_ROWS and the job's cap (setting-free: 10,000 rows), at most twice the last chunk

Why: the pool lets a user's request go before every chunk waiting (``backends.pool``), but it
does not interrupt the chunk the model is computing, so a user waits for at most about one
chunk's call. 1,000-row chunks made that 25 ms for a 200-tree forest, and a chunk so small
that the call's fixed cost (the process hop, the model's own checks) dominates would cost the
job its rows per second. A model whose every call costs more than half the target gets calls
of twice its fixed cost: at least half of each call is rows, and a user waits about two of his
own calls at most.

The sizes alternate a little above and below the one wanted (``DITHER``), so that the line's
two terms stay measurable while the job runs, and follow the model's cost when the machine
gets busier or quieter.
"""

from __future__ import annotations

import collections

TARGET_SECONDS = 0.004  # a chunk's model call, when the model's fixed cost allows it
LEAST_ROWS = 64
MOST_ROWS = 10_000
FIRST_ROWS = 256  # before anything is measured: 14 ms for the 200-tree forest, 2 ms for the demo
WINDOW = 16  # calls the line is fitted on
DITHER = (0.85, 1.15)


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
        budget = max(self.target, 2 * self.fixed)
        # no measurable cost per row (a model whose calls cost the same whatever their rows):
        # larger chunks cost the users nothing more
        wanted = (budget - self.fixed) / self.per_row if self.per_row > 0 else float(self.most)
        # growing at most twice per call: one quick call (noise) does not make a huge chunk
        size = max(self.least, min(self.most, 2 * rows, int(wanted)))
        # dithered after the bounds: at the least or the most, sizes still differ
        self._turn ^= 1
        self._next = max(self.least, min(self.most, 2 * rows, int(size * DITHER[self._turn])))

    def _fit(self) -> tuple[float, float]:
        """(fixed, per_row) seconds: the least-squares line through the calls seen. With one
        size seen, every second is counted per row (errs on the small side: the next size
        differs, and the line is measured); calls of several sizes that cost the same (or
        less with more rows: noise) are all fixed cost."""
        count = len(self._seen)
        mean_rows = sum(r for r, _ in self._seen) / count
        mean_seconds = sum(s for _, s in self._seen) / count
        spread = sum((r - mean_rows) ** 2 for r, _ in self._seen)
        if not spread:
            return 0.0, mean_seconds / mean_rows
        slope = sum((r - mean_rows) * (s - mean_seconds) for r, s in self._seen) / spread
        if slope <= 0:
            return mean_seconds, 0.0
        return max(0.0, mean_seconds - slope * mean_rows), slope

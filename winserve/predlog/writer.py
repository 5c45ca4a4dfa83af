"""The prediction log's queue and writer thread (issue 26, DESIGN decision 16).

::

    waitress threads (after each prediction)         winserve-predlog thread
    ─────────────────────────────────────────        ───────────────────────────────────────
    PredictionLog.put(Entry) ──► deque (bounded) ──► every INTERVAL s (or once BATCH wait):
      full: count one dropped, return                 take all, one transaction (store.write)
      never waits, never raises                       every PRUNE_EVERY s: store.prune
                                                      disk error: noted once, entries counted
                                                      lost, retried after a back-off
    close(): the thread writes what is queued, within a deadline, and closes the file

The request path costs one ``len`` and one ``append`` (both atomic under the GIL, so no lock):
the queue may overshoot its bound by the few threads racing past the check, never grow
without bound. Turning entries into rows and JSON happens on the writer thread.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from winserve.predlog import store
from winserve.predlog.store import Entry

log = logging.getLogger("winserve.predlog")

INTERVAL = 0.5  # at most this much of the log is lost when the process is killed
BATCH = 2000  # a transaction holds at most this many requests
CAPACITY = 20_000  # entries waiting; past it a request's entry is dropped and counted
PRUNE_EVERY = 60.0
RETRY_FIRST = 5.0
RETRY_MOST = 60.0
CLOSE_DEADLINE = 2.0


@dataclass(frozen=True)
class LogStatus:
    """What ``/health``, ``/metrics`` and the console say about the log."""

    path: str
    written: int
    dropped: int  # the queue was full
    lost: int  # the disk refused them (full, read-only, gone)
    error: str  # the last write's error, "" once writes succeed again

    def to_dict(self) -> dict[str, object]:
        answer: dict[str, object] = {
            "written": self.written,
            "dropped": self.dropped,
            "lost": self.lost,
        }
        if self.error:
            answer["error"] = self.error
        return answer


class PredictionLog:
    """The bounded queue of entries and the thread that writes them to ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        days: float = 30,
        max_bytes: int = 1024 * 1024 * 1024,
        keep_inputs: bool = True,
        capacity: int = CAPACITY,
        interval: float = INTERVAL,
        retry_first: float = RETRY_FIRST,
    ) -> None:
        self.path = path
        self.days = days
        self.max_bytes = max_bytes
        self.keep_inputs = keep_inputs
        self._capacity = capacity
        self._interval = interval
        self._queue: collections.deque[Entry] = collections.deque()
        self._drops = itertools.count(1)
        self.dropped = 0
        self.written = 0
        self.lost = 0
        self.error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="winserve-predlog", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._retry_at = 0.0
        self._retry_first = retry_first
        self._backoff = retry_first
        self._pruned_at = 0.0
        self._known: dict[tuple[str, ...], int] = {}  # column sets stored, by their names

    # ---- the request path ---------------------------------------------------------------

    def put(self, entry: Entry) -> None:
        """Queue ``entry``; drop and count it when the queue is full. Never blocks."""
        queue = self._queue
        waiting = len(queue)
        if waiting >= self._capacity:
            self.dropped = next(self._drops)  # next() of a count is atomic: no lost counts
            return
        queue.append(entry)
        if waiting == BATCH:  # a full batch waits: write it now rather than at the tick
            self._wake.set()

    # ---- the writer thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def status(self) -> LogStatus:
        return LogStatus(str(self.path), self.written, self.dropped, self.lost, self.error)

    def close(self, deadline: float = CLOSE_DEADLINE) -> None:
        """Write what is queued (within ``deadline`` seconds) and close the file."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(deadline)
        elif self._thread.ident is None:  # never started (a test, or no server): nothing queued
            return

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                self._flush()
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
                    self._prune()
            self._flush()  # what came in before close: close's deadline bounds it
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if time.monotonic() < self._retry_at:
                return None
            self._conn = store.connect(self.path)
            self._known.clear()  # the file may be a new one (deleted meanwhile)
        return self._conn

    def _flush(self) -> None:
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), BATCH))]
            try:
                conn = self._connection()
                if conn is None:  # backing off after an error: these are lost, memory freed
                    self.lost += len(batch)
                    continue
                self.written += store.write(conn, batch, self.keep_inputs, self._known)
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                self.lost += len(batch)  # after: who reads it sees the error noted
            else:
                if self.error:
                    log.warning("the prediction log is written again: %s", self.path)
                    self.error = ""
                self._backoff = self._retry_first

    def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        try:
            conn = self._connection()
            if conn is None:
                return
            deleted = store.prune(conn, now=time.time(), days=self.days, max_bytes=self.max_bytes)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return
        if deleted:
            log.info("prediction log: %d old entries deleted (log_days, log_max_mb)", deleted)

    def _failed(self, exc: BaseException) -> None:
        """Note a disk error once (until writes succeed again), and retry after a back-off."""
        reason = f"{type(exc).__name__}: {exc}"
        if not self.error:
            log.warning(
                "the prediction log cannot be written (%s): %s; serving goes on, entries are "
                "counted as lost, retrying every %.0f s at most",
                self.path,
                reason,
                RETRY_MOST,
            )
        self.error = reason
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MOST)


def default_path(served: Path | None, label: str) -> Path:
    """One log per model file or folder served (``label`` when none: the demo, a factory),
    under the per-user data folder: the name says which, a hash of the full path keeps two
    ``model.joblib`` in different folders apart."""
    import hashlib
    import re

    from winserve.platform import data_dir

    where = str(served.resolve()) if served is not None else label
    stem = served.name if served is not None else label
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "model"
    digest = hashlib.sha256(where.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return data_dir() / "predictions" / f"{stem}-{digest}.sqlite"

"""The prediction log's queue, in the web process (issue 26, DESIGN decision 16).

::

    waitress threads (after each prediction)     sender thread            writer process
    ──────────────────────────────────────────   ──────────────────────   ─────────────────
    PredictionLog.put(Entry)                     every INTERVAL s (or     (process.py)
      record_of: a tuple of plain values,          once BATCH wait):      one transaction
      pickled: bytes                               CHUNK of them in one   per arrival,
      ──► deque (bounded) ─────────────────────► message, sent ───────► pruning, back-off
      full: count one dropped, return            read its status ◄─────── (written, lost, …)
      never waits, never raises
    close(): the sender sends what is queued and the stop, waits for the writer's last word
    (within a deadline), and the process is ended, killed if it must be

The request path costs ``record_of`` and its pickle (a few µs for a 30-column row: no JSON, no
copy of a large request, see record.py), one ``len`` and one ``append`` (atomic under the GIL,
so no lock): the queue may overshoot its bound by the few threads racing past the check, never
grow without bound. The queue holds bytes, not lists: the garbage collector does not track
them, where a second of Records waiting (a few thousand lists) made each full collection of the
web process twice as long (~80 against ~37 ms; gc.callbacks under bench/predlog.py's load).
A native API request's Record is queued unpickled, a tuple of plain values and bytes only,
which the collector stops tracking when it first looks at it (issue 29: its pickled copy cost
the request thread page faults), and pickled with the sender's chunk.
The SQLite and JSON work, ~44 µs a request, is the writer process's (process.py says
why). When the writer falls behind, the pipe fills, the sender waits on it (not holding the
GIL) and the queue fills: requests' entries are dropped and counted, never waited for. A writer
process that dies is started again after a back-off, its entries in flight counted lost.
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import multiprocessing.util
import pickle
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from winserve.predlog import process
from winserve.predlog.process import Status
from winserve.predlog.record import ANSWERS, Entry, Record, record_of

log = logging.getLogger("winserve.predlog")

INTERVAL = 0.5  # the sender's tick: about what a kill -9 of the web process loses
BATCH = 2000  # this many waiting wake the sender before its tick
CHUNK = 512  # pickled Records per message: copies of bytes, then the send lets the GIL go
CAPACITY = 20_000  # entries waiting; past it a request's entry is dropped and counted
RETRY_FIRST = 5.0
CLOSE_DEADLINE = 2.0
PROTOCOL = pickle.HIGHEST_PROTOCOL
START_DEADLINE = 10.0  # a writer process still starting at close: how long it may take
MAX_LABEL_SETS = 10_000  # sets of column names numbered; past them each Record carries its own


@dataclass(frozen=True)
class LogStatus:
    """What ``/health``, ``/metrics`` and the console say about the log."""

    path: str
    written: int
    dropped: int  # the queue was full
    lost: int  # the disk refused them (full, read-only, gone), or the writer process died
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
    """The bounded queue of pickled Records, the thread that sends them to the writer process, and
    that process (started by ``start``, ended by ``close``)."""

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
        self._retry_first = retry_first
        self._queue: collections.deque[bytes | Record] = collections.deque()
        # The column names of the requests' rows, sent once to each writer process and then
        # referred to by their index in _label_sets (see record_of)
        self._label_ids: dict[tuple[str, ...], int] = {}
        self._label_sets: list[tuple[str, ...]] = []
        self._label_lock = threading.Lock()
        self._sent_sets = 0  # how many of _label_sets the current writer process has
        self._drops = itertools.count(1)
        self.dropped = 0
        self._refused = False
        self.error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False  # close() gave up waiting: no writer process is started again
        self._thread = threading.Thread(target=self._run, name="winserve-predlog", daemon=True)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._heard = False  # the current writer process has said it is up
        self._status: Status = (0, 0, 0, "", False)  # the current writer process's last word
        self._ended_written = 0  # written by writer processes that ended
        self._ended_lost = 0  # lost by them, and in flight when one died
        self._spawn_at = 0.0
        self._backoff = retry_first
        self._spawn_lock = threading.Lock()
        self._close_deadline = CLOSE_DEADLINE

    @property
    def written(self) -> int:
        return self._ended_written + self._status[0]

    @property
    def lost(self) -> int:
        return self._ended_lost + self._status[1]

    @property
    def pid(self) -> int | None:
        """The writer process's id; None when none runs."""
        proc = self._process
        return proc.pid if proc is not None else None

    # ---- the request path ---------------------------------------------------------------

    def put(self, entry: Entry) -> None:
        """Queue ``entry``; drop and count it when the queue is full. Never blocks, never
        raises."""
        queue = self._queue
        waiting = len(queue)
        if waiting >= self._capacity:
            self.dropped = next(self._drops)  # next() of a count is atomic: no lost counts
            return
        try:
            record = record_of(entry, self.keep_inputs, self._label_set)
            # a request sent as its bytes (the native API's, record.py) is queued as it is,
            # pickled with the sender's chunk: a copy of its body here cost this thread more
            # than the rest of its entry (issue 29); the collector stops tracking such a
            # tuple of plain values and bytes when it first looks at it
            queued = record if type(record[ANSWERS]) is bytes else pickle.dumps(record, PROTOCOL)
        except Exception:  # the log never fails a request
            if not self._refused:  # once: a model whose every answer fails would flood it
                self._refused = True
                log.exception("prediction log: request %s not logged", entry.request_id)
            self.dropped = next(self._drops)
            return
        queue.append(queued)
        if waiting == BATCH:  # a full batch waits: send it now rather than at the tick
            self._wake.set()

    def event(self, event: tuple[object, ...]) -> None:
        """Queue a model's event (predlog/events.py: a load, a restart): through the same
        pipe as the requests, past the queue's bound (a few a day; a restart loop is slowed by
        its back-off), never blocks or raises."""
        try:
            self._queue.append(pickle.dumps(event, PROTOCOL))
        except Exception:
            self.dropped = next(self._drops)

    def _label_set(self, names: tuple[str, ...]) -> tuple[str, ...] | int:
        """The number ``names`` go by (the names themselves past MAX_LABEL_SETS sets)."""
        found = self._label_ids.get(names)
        if found is not None:
            return found
        if len(self._label_sets) >= MAX_LABEL_SETS:
            return names
        with self._label_lock:
            found = self._label_ids.get(names)
            if found is None:
                found = len(self._label_sets)
                self._label_sets.append(names)
                self._label_ids[names] = found  # after the append: never a number without names
        return found

    # ---- the sender thread and the writer process ---------------------------------------

    def start(self) -> None:
        """Start the writer process and the sender thread."""
        self._spawn()
        self._thread.start()

    def status(self) -> LogStatus:
        return LogStatus(str(self.path), self.written, self.dropped, self.lost, self.error)

    def close(self, deadline: float = CLOSE_DEADLINE) -> None:
        """Write what is queued (within ``deadline`` seconds of the writer process being up)
        and end the writer process."""
        self._stop.set()
        self._wake.set()
        if self._thread.ident is None:  # never started (a test, or no server): nothing queued
            return
        self._close_deadline = deadline
        self._thread.join(deadline + (0.0 if self._heard else START_DEADLINE) + 1.0)
        with self._spawn_lock:
            self._closed = True
            proc = self._process
        if proc is not None and proc.is_alive():  # it did not finish in time: no orphan
            proc.kill()
            proc.join(5)
        self._thread.join(2)

    def _spawn(self) -> bool:
        """A writer process, started unless one runs, the back-off holds or close gave up."""
        with self._spawn_lock:
            if self._process is not None:
                return True
            if self._closed or time.monotonic() < self._spawn_at:
                return False
            ctx = multiprocessing.get_context("spawn")  # as the model hosts: never fork
            ours, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=process.run,
                args=(theirs, str(self.path), self.days, self.max_bytes, self._retry_first),
                name="winserve-predlog",
                daemon=True,
            )
            try:
                proc.start()
            except Exception as exc:  # whatever stops a spawn: serving goes on without the log
                ours.close()
                self._note(f"writer process did not start: {exc}")
                self._spawn_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, process.RETRY_MOST)
                return False
            finally:
                theirs.close()  # the child's copy only: its end closes when the child ends
            # An interpreter that exits without close() joins its children (multiprocessing's
            # atexit), and this one ignores SIGTERM: closing our end first ends it (EOF).
            multiprocessing.util.Finalize(None, ours.close, exitpriority=10)
            self._process, self._conn, self._heard = proc, ours, False
            self._sent_sets = 0
            self._status = (0, 0, 0, "", False)
            return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                self._send()
                self._hear(0)
            self._send()  # what came in before close
            self._finish()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _send(self) -> None:
        queue = self._queue
        while queue:
            chunk = [queue.popleft() for _ in range(min(len(queue), CHUNK))]
            conn = self._conn if self._spawn() else None
            if conn is None:  # no writer process (backing off): these are lost, memory freed
                self._ended_lost += len(chunk)
                continue
            # after the chunk was taken: every number in it has its names in the list by now
            first = self._sent_sets
            sets = self._label_sets[first:]
            try:
                # a list of bytes pickles as copies; the send lets the GIL go while the pipe is full
                conn.send_bytes(pickle.dumps((first, sets, chunk), PROTOCOL))
            except (OSError, ValueError):
                self._ended_lost += len(chunk)
                self._writer_gone()
            else:
                self._sent_sets = first + len(sets)

    def _hear(self, timeout: float) -> bool:
        """Read the writer process's status messages (waiting ``timeout`` s for the first);
        whether its last word (final) came."""
        conn = self._conn
        if conn is None:
            return False
        try:
            while conn.poll(timeout):
                timeout = 0
                status: Status = conn.recv()
                self._heard = True
                self._apply(status)
                if status[4]:
                    return True
        except (EOFError, OSError):
            self._writer_gone()
        return False

    def _apply(self, status: Status) -> None:
        pruned, error = status[2], status[3]
        if pruned > self._status[2]:
            log.info(
                "prediction log: %d old entries deleted (log_days, log_max_mb)",
                pruned - self._status[2],
            )
        self._status = status
        if error and error != self.error:
            self._note(f"cannot be written ({self.path}): {error}")
        elif not error and self.error:
            log.warning("the prediction log is written again: %s", self.path)
            self.error = ""

    def _note(self, reason: str) -> None:
        if not self.error:
            log.warning(
                "the prediction log %s; serving goes on, entries are counted as lost, "
                "retrying every %.0f s at most",
                reason,
                process.RETRY_MOST,
            )
        self.error = reason

    def _writer_gone(self) -> None:
        """The writer process ended (killed, crashed): keep its counts, start another after
        a back-off."""
        with self._spawn_lock:
            proc, conn = self._process, self._conn
            self._process = self._conn = None
            self._ended_written += self._status[0]
            self._ended_lost += self._status[1]
            self._status = (0, 0, 0, "", False)
            if not self._closed:
                self._spawn_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, process.RETRY_MOST)
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(1)
            if proc.exitcode is None:
                proc.kill()
                proc.join(5)
            if proc.exitcode != 0 and not self._stop.is_set():  # 0: it saw our end close
                self._note(f"writer process ended (exit code {proc.exitcode})")

    def _finish(self) -> None:
        """Tell the writer process to stop, wait for its last word, and end it."""
        conn = self._conn
        if conn is None:
            return
        if not self._heard:  # still starting (a close right after start): let it come up
            self._hear(START_DEADLINE)
        end = time.monotonic() + self._close_deadline
        try:
            conn.send_bytes(process.STOP)
        except (OSError, ValueError):
            self._writer_gone()
            return
        while (left := end - time.monotonic()) > 0 and self._conn is not None:
            if self._hear(left):
                break
        proc = self._process
        if proc is not None:
            proc.join(max(0.0, end - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            with self._spawn_lock:
                self._ended_written += self._status[0]
                self._ended_lost += self._status[1]
                self._status = (0, 0, 0, "", False)
                self._process = None

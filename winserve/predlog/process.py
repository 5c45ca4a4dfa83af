"""The prediction log's writer process (issue 26): SQLite, JSON and pruning, off the web process.

::

    web process (writer.py's sender thread)          this process (spawned, run())
    ───────────────────────────────────────          ─────────────────────────────────────────
    pickled Records, new column sets ── pipe ──────► unpickle, gather what has arrived,
                                                       one transaction (store.write_records)
    status (written, lost, pruned, error) ◄───────── after each transaction that changed it
    STOP ───────────────────────────────────────────► write what is left, answer final, exit
    the pipe closes (the web process died) ─────────► write what is left, exit
                                                      every PRUNE_EVERY s: store.prune
                                                      disk error: noted once, Records counted
                                                      lost, retried after a back-off

Why a process: in the web process the writer thread's ~44 µs of CPU per request became ~435 µs
of waiting for the GIL beside 32 request threads, and the request threads waited for it as
much (profiled; bench/predlog.py: 0.73-1.06x the req/s). Here the work runs on the other core
and the web process only pickles plain tuples. It runs at the lowest priority (``NICE``;
Windows: below normal), so that on a busy machine its ~15-20 µs a request wait for the
requests: at nice 5 the runs with the log on had a low tail (5 of 14 at 0.65-0.78x the
median off), at nice 19 not (bench/RESULTS.md).

No orphans, on every OS, without killing what was received: the web process's end of the pipe
closes however it dies (Task Manager, ``taskkill /F``, SIGKILL), so ``recv`` ends and this
process writes what it holds and exits; a thread watching the parent's sentinel ends it
``GRACE`` seconds after the parent died whatever it is doing (SQLite lets the GIL go, so
that thread always runs; WAL keeps the file whole when a transaction is cut). Not in the
model hosts' Job Object: it would kill this process at the parent's death, before it wrote
what it had received. Ctrl+C and SIGTERM are the parent's to act on: it sends the stop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sqlite3
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from winserve.predlog import events, jobs, store
from winserve.predlog.record import ANSWERS, LABELS, Record, replayed

# what this process tells the parent: (written, lost, pruned, error, final); the parent logs
# (this process has no console log of its own)
Status = tuple[int, int, int, str, bool]
BATCH = 2000  # a transaction holds at most this many requests
PRUNE_EVERY = 60.0
RETRY_MOST = 60.0
GRACE = 2.0  # after the parent died: time to write what was received, then exit regardless
ORPHAN_EXIT_CODE = 3
NAME = "winserve-log"  # at most 15 bytes: Linux's limit for a process's name
PR_SET_NAME = 15  # <linux/prctl.h>
NICE = 19  # POSIX: the lowest: the log waits whenever something else wants the CPU
BELOW_NORMAL_PRIORITY_CLASS = 0x4000  # Windows: the class just below the web process's
# the parent's last message: not a pickle (those start with b"\x80"), and not empty (an empty
# message through a Windows pipe is best not relied on)
STOP = b"stop"


class Writer:
    """One log file: its connection, the counts, the back-off after a disk error."""

    def __init__(self, path: Path, *, days: float, max_bytes: int, retry_first: float) -> None:
        self.path = path
        self.days = days
        self.max_bytes = max_bytes
        self.written = 0
        self.lost = 0
        self.pruned = 0
        self.error = ""
        self._conn: sqlite3.Connection | None = None
        self._retry_at = 0.0
        self._retry_first = retry_first
        self._backoff = retry_first
        self._known: dict[tuple[str, ...], int] = {}  # column sets stored, by their names
        self.pruned_at = time.monotonic()  # the first prune a minute after the start

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if time.monotonic() < self._retry_at:
                return None
            self._conn = store.connect(self.path)
            self._known.clear()  # the file may be a new one (deleted meanwhile)
        return self._conn

    def open(self) -> None:
        """Open the file now (else at the first write), noting an error as a write would."""
        try:
            self._connection()
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)

    def write(self, records: list[Record]) -> None:
        try:
            conn = self._connection()
            if conn is None:  # backing off after an error: these are lost
                self.lost += len(records)
                return
            # a model's events and the CSV jobs' entries (events.py, jobs.py): a few a day
            others = [r for r in records if type(r[0]) is int]
            if others:
                records = [r for r in records if type(r[0]) is not int]
                events.write(conn, [r for r in others if events.is_event(r)])  # type: ignore[misc]
                jobs.write(conn, [r for r in others if jobs.is_job(r)], self._known)
            self.written += store.write_records(conn, records, self._known)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            self.lost += len(records)
        else:
            self.error = ""
            self._backoff = self._retry_first

    def prune(self) -> None:
        self.pruned_at = time.monotonic()
        try:
            conn = self._connection()
            if conn is None:
                return
            deleted = store.prune(conn, now=time.time(), days=self.days, max_bytes=self.max_bytes)
            events.prune(conn, time.time() - self.days * store.DAY)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return
        self.pruned += deleted

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _failed(self, exc: BaseException) -> None:
        """Note a disk error (the parent logs it), and retry after a back-off."""
        self.error = f"{type(exc).__name__}: {exc}"
        self.close()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MOST)

    def status(self, final: bool = False) -> Status:
        return (self.written, self.lost, self.pruned, self.error, final)


def _lower_priority() -> None:
    """Below the web process and the model hosts: on a busy machine the log waits, a request
    does not (it may fall behind; the web process's bounded queue then drops and counts)."""
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        kernel32.SetPriorityClass.argtypes = (wintypes.HANDLE, wintypes.DWORD)
        kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), BELOW_NORMAL_PRIORITY_CLASS)
    else:
        with contextlib.suppress(OSError):
            os.nice(NICE)


def _name_this_process() -> None:
    """``winserve-log`` in ps, top and psutil on Linux (the model hosts keep Python's name)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_NAME, NAME.encode(), 0, 0, 0)


def _exit_after_parent(parent: Any) -> None:
    parent.join()  # its sentinel: ready once the parent is gone, however it ended
    time.sleep(GRACE)
    os._exit(ORPHAN_EXIT_CODE)


def run(conn: Connection, path: str, days: float, max_bytes: int, retry_first: float) -> None:
    """The writer process's main (a spawn target: importable, arguments plain)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole console
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent stops this one
    _name_this_process()
    _lower_priority()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_exit_after_parent, args=(parent,), name="parent-watchdog", daemon=True
        ).start()
    writer = Writer(Path(path), days=days, max_bytes=max_bytes, retry_first=retry_first)
    writer.open()  # an unwritable folder is reported before the first request, not after
    told = writer.status()
    _tell(conn, told)  # up: the parent's close deadline counts from here
    pending: list[Record] = []
    label_sets: list[tuple[str, ...]] = []  # the column names' sets, by their number
    stopping = False
    try:
        while not stopping:
            wait = max(0.0, writer.pruned_at + PRUNE_EVERY - time.monotonic())
            try:
                if conn.poll(wait):
                    data = conn.recv_bytes()
                    if data == STOP:
                        stopping = True
                    else:
                        pending += _records(data, label_sets)
                        if len(pending) < BATCH and conn.poll(0):
                            continue  # more has arrived: one transaction for all of it
            except (EOFError, OSError):
                stopping = True  # the parent is gone: write what arrived, then exit
            if pending:
                writer.write(pending)
                pending = []
            if time.monotonic() - writer.pruned_at >= PRUNE_EVERY:
                writer.prune()
            if writer.status() != told:
                told = writer.status()
                _tell(conn, told)
    finally:
        if pending:
            writer.write(pending)
        writer.close()
        _tell(conn, writer.status(final=True))


def _records(data: bytes, label_sets: list[tuple[str, ...]]) -> list[Record]:
    """The Records of one message (first, the new sets of column names from number
    ``first`` on, the pickled Records), their numbers turned back into names."""
    first, new, chunk = pickle.loads(data)
    del label_sets[first:]
    label_sets += new
    records = []
    for pickled in chunk:
        record = pickle.loads(pickled) if type(pickled) is bytes else pickled  # see writer.put
        if type(record[0]) is int:  # a model's event, a job's entry: names as they are
            records.append(record)
            continue
        if type(record[LABELS]) is int:
            record = (*record[:LABELS], label_sets[record[LABELS]], *record[LABELS + 1 :])
        if type(record[ANSWERS]) is bytes:  # a request sent as its bytes (issue 29)
            record = replayed(record)
        records.append(record)
    return records


def _tell(conn: Connection, status: Status) -> None:
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        conn.send(status)

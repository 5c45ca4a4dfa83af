"""What happened to a model besides its requests (issue 26): loaded version N, a replica
restarted, a load failed, a swap refused; kept in the prediction log's ``events`` table and
shown on the monitor page's timeline.

::

    models/swap.py, backends/replicas.py, …  ─► note(kind, model, …)   (any thread, never raises)
        │ a tuple of plain values, MARK first (a request's Record starts with its id, a str)
        ▼
    listeners: PredictionLog.event (server.py registers it while the log is open)
        │ the log's own queue and pipe, as the requests go (writer.py)
        ▼
    the writer process: process.py hands the tuples with MARK to ``write`` (SQLite, own table)
        ▼
    monitor page: ``read`` (query-only, time order) ─► the timeline

A process-wide list of listeners, not an argument threaded through the registry, the loader
and every backend: an event is rare (a load, a restart after a back-off) and its senders sit
below the web floor, which must not know the log. With no log open an event goes nowhere.
A replica's restart is known by its file's SHA-256, not its name (a backend does not know the
name it serves under): ``read`` finds it through the ``loaded`` events of that name. A
``loaded`` event's ``how`` (what the checked swap found: "forced by the owner after the check
refused it (agreed 64.6 %)") joins its words; it is stored ahead of the detail.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("winserve.predlog")

MARK = -1  # an event's first field; a request's Record starts with its request id (a str)
# what an event is, and how the page says it
KINDS = {
    "loaded": "loaded",
    "restarted": "replica restarted",
    "load_failed": "load failed",
    "swap_refused": "swap refused",
    "unloaded": "unloaded",
    "job": "CSV job",
}
MAX_DETAIL = 500  # characters of a reason kept (a traceback's last line is enough)
# ends an event's ``how`` in its stored detail (issue 26: how a version came to serve): the
# ASCII unit separator, which no text noted has (``note`` takes it out) or had before
HOW_END = "\x1f"
MAX_HOW = 200  # characters of it (a note on why a version was not checked is enough)
MAX_READ = 1000  # the most recent events of a period shown

# (MARK, time, model or None, version or None, sha256 or None, kind, detail)
Event = tuple[int, float, str | None, int | None, str | None, str, str]
Listener = Callable[[Event], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    model TEXT,
    version INTEGER,
    sha256 TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""

_listeners: list[Listener] = []
_lock = threading.Lock()


def listen(listener: Listener) -> Callable[[], None]:
    """Send every event noted from now on to ``listener``; returns what stops it."""
    with _lock:
        _listeners.append(listener)

    def stop() -> None:
        with _lock, contextlib.suppress(ValueError):
            _listeners.remove(listener)

    return stop


def note(
    kind: str,
    model: str | None,
    version: int | None = None,
    *,
    sha256: str | None = None,
    detail: str = "",
    how: str = "",
) -> None:
    """Tell the listeners (the prediction log) that ``kind`` happened; never raises: an event
    lost is a line missing on a page, never a load or a restart failed. ``how`` joins the
    event's words ("version 2 loaded: forced by the owner …"), ``detail`` follows them."""
    detail = detail.replace(HOW_END, " ")
    if how:  # kept in the detail column, before HOW_END (a log has no column for it)
        detail = how[:MAX_HOW].replace(HOW_END, " ") + HOW_END + detail
    event: Event = (MARK, time.time(), model, version, sha256 or None, kind, detail[:MAX_DETAIL])
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # the log never fails what it watches
            log.exception("prediction log: event %s not logged", kind)


def is_event(record: tuple[Any, ...]) -> bool:
    return bool(record) and record[0] == MARK


def write(conn: sqlite3.Connection, events: Sequence[Event]) -> int:
    """Store ``events`` in one transaction (the table made on first use: a log file from
    before the events has none); how many were stored."""
    if not events:
        return 0
    conn.executescript(SCHEMA)  # a few per day: the IF NOT EXISTS costs nothing worth caching
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO events (time, model, version, sha256, kind, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [e[1:7] for e in events],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(events)


def prune(conn: sqlite3.Connection, before: float) -> None:
    """Delete the events older than ``before`` (the log's days, as the requests)."""
    with contextlib.suppress(sqlite3.OperationalError):  # no table yet: nothing to prune
        conn.execute("DELETE FROM events WHERE time < ?", (before,))


@dataclass(frozen=True)
class ModelEvent:
    """One event as the page and ``monitor.json`` show it."""

    time: float
    kind: str
    version: int | None
    detail: str
    how: str = ""  # joins the words: how a version came to serve (``note``'s)

    @property
    def words(self) -> str:
        said = KINDS.get(self.kind, self.kind)
        if self.kind == "loaded" and self.version is not None:
            how = f": {self.how}" if self.how else ""
            return f"version {self.version} loaded{how}"
        if self.kind == "job" and self.version is not None:
            return f"CSV job on version {self.version}"
        return said

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": self.kind,
            "version": self.version,
            "words": self.words,
            "detail": self.detail,
        }


READ = f"""
SELECT time, kind, version, detail FROM events
WHERE time >= ? AND time < ? AND (
    model = ? OR (model IS NULL AND sha256 IN (
        SELECT sha256 FROM events WHERE model = ? AND kind = 'loaded' AND sha256 IS NOT NULL)))
ORDER BY time DESC, id DESC LIMIT {MAX_READ}
"""


def read(conn: sqlite3.Connection, model: str, since: float, until: float) -> list[ModelEvent]:
    """``model``'s events from ``since`` to ``until`` in time order (the most recent
    MAX_READ); none from a log written before there were events."""
    try:
        rows = conn.execute(READ, (since, until, model, model)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [_event(float(t), str(k), v, str(d)) for t, k, v, d in reversed(rows)]


def _event(at: float, kind: str, version: int | None, stored: str) -> ModelEvent:
    how, end, detail = stored.partition(HOW_END)
    return ModelEvent(at, kind, version, detail, how) if end else ModelEvent(at, kind, version, how)


def read_file(path: Path, model: str, since: float, until: float) -> list[ModelEvent]:
    """``read`` on a query-only connection of its own (none when the log is not written yet)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        return read(conn, model, since, until)
    finally:
        conn.close()

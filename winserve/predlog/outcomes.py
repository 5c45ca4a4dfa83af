"""Outcomes, the truth learnt after a prediction, kept beside the prediction log and joined
with its predictions (issue 26).

::

    upload (web process, the owner's, rare) ─► save(path, model, key, outcomes)
        │ reads first, outside any transaction (WAL: the log's writer is not held up),
        │ outcome_matches.py: which logged prediction(s) each key names
        │   key "" (the request id): one pass over the requests (no index)
        │   key "<input>": the model's logged inputs, newest first, up to MAX_SEARCHED rows
        ▼
        outcomes         (model, key_column, key) → outcome      re-uploading a key replaces
        outcome_matches  (model, key_column, key) → the prediction(s) it was joined with:
                         when, which version (sha256 and number), what it said
        written in transactions of CHUNK outcomes: the log's writer waits at most ~1 s for
        the file's lock (store.BUSY_MS), so no transaction here holds it long
    monitor page ─► joined(path, model, since, until) ─► accuracy.scores

The join is made once, at upload: outcomes come after their predictions, and the page then
reads a few small tables instead of the whole log. Which prediction a key names, and why the
requests are searched without an index, is ``outcome_matches.py``.

Outcomes and their matches are kept as the log's entries are: deleted ``log_days`` after
they were uploaded (an outcome) or predicted (a match), at the next upload.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from winserve.predlog import store
from winserve.predlog.accuracy import Joined
from winserve.predlog.outcome_matches import (
    Match,
    Saved,
    by_column,
    by_request_id,
    version_label,
)

REQUEST_ID = ""  # the key_column of outcomes joined on the request id
CHUNK = 2000  # outcomes written per transaction
EXAMPLES = 5  # unmatched keys shown

SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    model TEXT NOT NULL,
    key_column TEXT NOT NULL,
    key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    uploaded REAL NOT NULL,
    PRIMARY KEY (model, key_column, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcome_matches (
    model TEXT NOT NULL,
    key_column TEXT NOT NULL,
    key TEXT NOT NULL,
    time REAL NOT NULL,
    version INTEGER,
    sha256 TEXT,
    prediction TEXT
);
CREATE INDEX IF NOT EXISTS outcome_matches_key ON outcome_matches (model, key_column, key);
"""


def _connect(path: Path) -> sqlite3.Connection:
    """The log's file with the writer's settings (WAL, synchronous NORMAL) and these tables."""
    conn = store.connect(path)
    try:
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def logged_columns(path: Path, model: str) -> set[str] | None:
    """The input columns the log kept for ``model`` (None: no log file yet)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        names: set[str] = set()
        for (text,) in conn.execute(
            "SELECT names FROM column_sets WHERE id IN "
            "(SELECT DISTINCT columns FROM requests WHERE model = ? AND inputs IS NOT NULL)",
            (model,),
        ):
            names.update(json.loads(text))
        return names
    finally:
        conn.close()


def save(
    path: Path,
    model: str,
    key_column: str,
    outcomes: dict[str, str],
    *,
    days: float,
    now: float | None = None,
) -> Saved:
    """Store ``outcomes`` (key → outcome, keys already as ``label_text`` gives them) of
    ``model``, joined on the request id (``key_column`` = REQUEST_ID) or on that input
    column; each key's earlier outcome and matches are replaced."""
    now = time.time() if now is None else now
    saved = Saved()
    keys = list(outcomes)
    conn = _connect(path)
    try:
        if key_column == REQUEST_ID:
            single = by_request_id(conn, model, keys, saved)
            matches = {k: [m] for k, m in single.items()}
        else:
            matches = by_column(conn, model, key_column, keys, saved)
        for start in range(0, len(keys), CHUNK):
            _write(conn, model, key_column, keys[start : start + CHUNK], outcomes, matches, now)
        _prune(conn, now - days * store.DAY)
    finally:
        conn.close()
    saved.stored = len(keys)
    saved.matched = sum(1 for k in keys if k in matches)
    missed = [k for k in keys if k not in matches]
    saved.unmatched = len(missed)
    saved.examples = missed[:EXAMPLES]
    return saved


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, rolled back on any error (``isolation_level=None``: begun and
    committed here)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _write(
    conn: sqlite3.Connection,
    model: str,
    key_column: str,
    keys: Sequence[str],
    outcomes: dict[str, str],
    matches: dict[str, list[Match]],
    now: float,
) -> None:
    with _transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO outcomes (model, key_column, key, outcome, uploaded) "
            "VALUES (?, ?, ?, ?, ?)",
            [(model, key_column, k, outcomes[k], now) for k in keys],
        )
        conn.executemany(
            "DELETE FROM outcome_matches WHERE model = ? AND key_column = ? AND key = ?",
            [(model, key_column, k) for k in keys],
        )
        conn.executemany(
            "INSERT INTO outcome_matches (model, key_column, key, time, version, sha256, "
            "prediction) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (model, key_column, k, m.time, m.version, m.sha256, json.dumps(m.prediction))
                for k in keys
                for m in matches.get(k, ())
            ],
        )


def _prune(conn: sqlite3.Connection, before: float) -> None:
    """Outcomes uploaded, and matches predicted, before ``before`` (the log's days)."""
    with _transaction(conn):
        conn.execute("DELETE FROM outcome_matches WHERE time < ?", (before,))
        conn.execute("DELETE FROM outcomes WHERE uploaded < ?", (before,))


@dataclass(frozen=True)
class Outcomes:
    """The outcomes of one model joined with the predictions of a period."""

    stored: int  # outcomes of the model, whenever predicted
    joined: tuple[Joined, ...]  # those whose prediction falls in the period (one per version)
    unmatched: int  # outcomes that matched no logged prediction at upload
    examples: tuple[str, ...]  # a few of their keys


def joined(path: Path, model: str, since: float, until: float) -> Outcomes:
    """The outcomes of ``model`` beside the predictions they were joined with, made from
    ``since`` to ``until`` (Unix seconds). Read-only: the page never writes."""
    if not path.exists():
        return Outcomes(0, (), 0, ())
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "outcomes" not in tables:
            return Outcomes(0, (), 0, ())
        stored = conn.execute("SELECT count(*) FROM outcomes WHERE model = ?", (model,))
        count = int(stored.fetchone()[0])
        rows = conn.execute(
            "SELECT m.time, m.version, m.sha256, m.prediction, o.outcome "
            "FROM outcome_matches AS m JOIN outcomes AS o "
            "ON o.model = m.model AND o.key_column = m.key_column AND o.key = m.key "
            "WHERE m.model = ? AND m.time >= ? AND m.time < ? ORDER BY m.time",
            (model, since, until),
        )
        found = tuple(
            Joined(moment, version_label(version, sha), json.loads(prediction), outcome)
            for moment, version, sha, prediction, outcome in rows
        )
        unmatched = (
            "FROM outcomes AS o WHERE o.model = ? AND NOT EXISTS (SELECT 1 FROM "
            "outcome_matches AS m WHERE m.model = o.model AND m.key_column = o.key_column "
            "AND m.key = o.key)"
        )
        missed = int(conn.execute(f"SELECT count(*) {unmatched}", (model,)).fetchone()[0])
        examples = tuple(
            r[0]
            for r in conn.execute(
                f"SELECT o.key {unmatched} ORDER BY o.uploaded DESC LIMIT {EXAMPLES}", (model,)
            )
        )
    finally:
        conn.close()
    return Outcomes(count, found, missed, examples)

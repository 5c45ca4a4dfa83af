"""Outcomes, the truth learnt after a prediction, kept beside the prediction log and joined
with its predictions (issue 26).

::

    upload (web process, the owner's, rare) ─► save(path, model, key, outcomes)
        │ reads first, outside any transaction (WAL: the log's writer is not held up):
        │   key "" (the request id): one pass over the requests (no index: see below)
        │   key "<input>": the model's logged inputs, newest first, up to MAX_SEARCHED rows
        ▼
        outcomes         (model, key_column, key) → outcome      re-uploading a key replaces
        outcome_matches  (model, key_column, key) → the prediction(s) it was joined with:
                         when, which version (sha256 and number), what it said
        written in transactions of CHUNK outcomes: the log's writer waits at most ~1 s for
        the file's lock (store.BUSY_MS), so no transaction here holds it long
    monitor page ─► joined(path, model, since, until) ─► accuracy.scores

The join is made once, at upload: outcomes come after their predictions, and the page then
reads a few small tables instead of the whole log. A request id is the ``X-Request-Id``
winserve answered with; a request of several rows names its row as ``<id>-<n>`` (n from 1),
matched to the row the log kept (a request of more than 100 rows keeps a sample:
``store.MAX_ROWS_STORED``); a scored file's ``request id`` cell is ``<upload's id>-<line>``,
matched to the job's entry (kind 'job', whose sample holds the kept rows' line numbers:
``predlog/jobs.py`` keeps a bounded sample of a file's rows, so most rows of a large file
find no prediction). A key column is
one of the model's inputs the log kept (an id the model's pipeline drops, for example):
each version's newest prediction for that key is the one joined. Keys and labels are compared
as text (``accuracy.label_text``: ``1001`` and ``1001.0`` are the same key).

No index on ``requests.request_id``: made by the first upload, it held the log's write lock
for 0.5 s of CPU per million requests (1.2 s wall at load 7; the writer gives up after 1 s
and its batch is lost), and every insert after it would pay for it; one pass over the
requests without it costs about as much as making it (0.17 s against 0.19 s of CPU for
300,000 requests, load 10) and locks nothing, at an upload that comes now and then
(``python bench/outcomes.py`` times the whole upload and the index beside it).

Outcomes and their matches are kept as the log's entries are: deleted ``log_days`` after
they were uploaded (an outcome) or predicted (a match), at the next upload.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winserve.predlog import store
from winserve.predlog.accuracy import Joined, label_text

REQUEST_ID = ""  # the key_column of outcomes joined on the request id
CHUNK = 2000  # outcomes written per transaction
MAX_SEARCHED = 500_000  # logged rows searched for a key column's values, newest first
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


@dataclass(frozen=True)
class Match:
    """A logged prediction an outcome was joined with."""

    time: float
    version: int | None
    sha256: str | None
    prediction: Any


@dataclass
class Saved:
    """What an upload did: outcomes stored, how many found a logged prediction, which did
    not (a few), and how many logged rows a key column's search read."""

    stored: int = 0
    matched: int = 0
    unmatched: int = 0
    examples: list[str] = field(default_factory=list)
    searched_rows: int = 0
    search_cut: bool = False  # MAX_SEARCHED rows read before the log's oldest
    # a request id found in the log, but not the row named: a row beyond the request's, or
    # one the log did not keep (a sample of a large request, of a scored file's rows)
    not_kept: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "unmatched_examples": self.examples,
            "searched_rows": self.searched_rows,
            "search_cut": self.search_cut,
            "not_kept": self.not_kept,
        }


def version_label(version: int | None, sha256: str | None) -> str:
    """A version across restarts: its file's sha256 (12 digits), else its number."""
    return sha256[:12] if sha256 else f"version {version}"


def _connect(path: Path) -> sqlite3.Connection:
    """The log's file with the writer's settings (WAL, synchronous NORMAL) and these tables."""
    conn = store.connect(path)
    try:
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _row(predictions: list[Any], sample: str | None, number: int, job: bool) -> Any:
    """The prediction of row ``number`` (from 1) of a request, or of line ``number`` of a
    scored file (``job``: its entry's sample holds the kept rows' line numbers,
    predlog/jobs.py); IndexError when there is no such row or the log did not keep it
    (``sample``: the 0-based rows kept of a larger request)."""
    picks: list[int] | None = json.loads(sample) if sample is not None else None
    if job:
        if not picks or number not in picks:
            raise IndexError(number)
        return predictions[picks.index(number)]
    row = number - 1
    if picks is not None:
        if row not in picks:
            raise IndexError(row)
        row = picks.index(row)
    if not 0 <= row < len(predictions):
        raise IndexError(row)
    return predictions[row]


def _split(key: str) -> tuple[str, int] | None:
    """``<id>-<n>`` as (id, n), or None."""
    base, dash, number = key.rpartition("-")
    if dash and base and number.isdigit() and int(number) >= 1:
        return base, int(number)
    return None


def by_request_id(
    conn: sqlite3.Connection, model: str, keys: Sequence[str], saved: Saved | None = None
) -> dict[str, Match]:
    """The logged prediction each key names: a request of one row by its id, a row of a
    larger request as ``<id>-<n>`` (n from 1), a row of a scored file as its ``request id``
    cell (``<upload's id>-<line>``); the newest entry when a client reused an id. Keys whose
    request was found but not the row are counted in ``saved.not_kept``."""
    wanted = set(keys)
    for key in keys:
        parts = _split(key)
        if parts is not None:
            wanted.add(parts[0])
    found: dict[str, tuple[float, int | None, str | None, list[Any], str | None, bool]] = {}
    # the ids in a temporary table (this connection's own: the log's file is not locked),
    # then one pass over the requests (see the module's docstring: no index)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (id TEXT PRIMARY KEY) WITHOUT ROWID")
    try:
        conn.execute("DELETE FROM temp.wanted")
        conn.executemany("INSERT INTO temp.wanted VALUES (?)", [(w,) for w in wanted])
        query = (
            "SELECT request_id, time, version, sha256, predictions, sample, kind "
            "FROM requests WHERE model = ? AND predictions IS NOT NULL "
            "AND request_id IN (SELECT id FROM temp.wanted) ORDER BY id"
        )
        for rid, moment, version, sha, answers, sample, kind in conn.execute(query, (model,)):
            # the newest entry of an id wins
            found[rid] = (moment, version, sha, json.loads(answers), sample, kind == "job")
    finally:
        conn.execute("DROP TABLE temp.wanted")
    matches: dict[str, Match] = {}
    for key in keys:
        entry = found.get(key)
        number = 1
        if entry is None or entry[5] or len(entry[3]) != 1 or entry[4] is not None:
            parts = _split(key)
            if parts is None or parts[0] not in found:
                continue  # no such request, or several rows and no row named
            entry, number = found[parts[0]], parts[1]
        moment, version, sha, predictions, sample, job = entry
        try:
            matches[key] = Match(moment, version, sha, _row(predictions, sample, number, job))
        except IndexError:
            if saved is not None:  # a row the request did not have, or the log did not keep
                saved.not_kept += 1
    return matches


def _logged(
    conn: sqlite3.Connection, model: str
) -> Iterator[tuple[float, int | None, str | None, str, str | bytes, str]]:
    return conn.execute(
        "SELECT r.time, r.version, r.sha256, c.names, r.inputs, r.predictions "
        "FROM requests AS r JOIN column_sets AS c ON c.id = r.columns "
        "WHERE r.model = ? AND r.inputs IS NOT NULL AND r.predictions IS NOT NULL "
        "ORDER BY r.id DESC",
        (model,),
    )


def by_column(
    conn: sqlite3.Connection, model: str, column: str, keys: Sequence[str], saved: Saved
) -> dict[str, list[Match]]:
    """Each version's newest logged prediction of a row whose input ``column`` is the key
    (as text); the rows read are counted in ``saved``."""
    wanted = set(keys)
    matches: dict[str, list[Match]] = {}
    seen: set[tuple[str, str]] = set()  # (key, version) already joined
    where: dict[str, int | None] = {}  # the column's position in each column set
    for moment, version, sha, names, inputs, predictions in _logged(conn, model):
        if names not in where:
            listed = json.loads(names)
            where[names] = listed.index(column) if column in listed else None
        position = where[names]
        if position is None:
            continue
        rows = store.decode_inputs(names, inputs) or []
        answers: list[Any] = json.loads(predictions)
        label = version_label(version, sha)
        saved.searched_rows += len(rows)
        # the newest row of a request first, as the requests come newest first
        for i in range(min(len(rows), len(answers)) - 1, -1, -1):
            value = rows[i][position] if position < len(rows[i]) else None
            if value is None:
                continue
            key = label_text(value)
            if key in wanted and (key, label) not in seen:
                seen.add((key, label))
                matches.setdefault(key, []).append(Match(moment, version, sha, answers[i]))
        if saved.searched_rows >= MAX_SEARCHED:
            saved.search_cut = True
            break
    return matches


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

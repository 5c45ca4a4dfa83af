"""Which logged prediction each outcome's key names (issue 26): the search an upload of
outcomes makes in the prediction log before ``outcomes.save`` writes the join.

::

    outcomes.save(path, model, key_column, outcomes) ─► (its connection, no transaction)
      key_column "" (the request id) ─► by_request_id: the ids in a temporary table, one pass
          over the model's requests (no index: see below) ─► {key: Match}
      key_column "<input>" ─► by_column: the model's logged inputs, newest first, up to
          MAX_SEARCHED rows ─► {key: [Match per version]}
      counted in Saved: rows searched, the search cut, request ids found whose row was not kept

A request id is the ``X-Request-Id`` winserve answered with; a request of several rows names
its row as ``<id>-<n>`` (n from 1), matched to the row the log kept (a request of more than 100
rows keeps a sample: ``store.MAX_ROWS_STORED``); a scored file's ``request id`` cell is
``<upload's id>-<line>``, matched to the job's entry (kind 'job', whose sample holds the kept
rows' line numbers: ``predlog/jobs.py`` keeps a bounded sample of a file's rows, so most rows
of a large file find no prediction). A key column is one of the model's inputs the log kept
(an id the model's pipeline drops, for example): each version's newest prediction for that
key is the one joined. Keys and labels are compared as text (``accuracy.label_text``: ``1001``
and ``1001.0`` are the same key).

No index on ``requests.request_id``: made by the first upload, it held the log's write lock
for 0.5 s of CPU per million requests (1.2 s wall at load 7; the writer gives up after 1 s
and its batch is lost), and every insert after it would pay for it; one pass over the
requests without it costs about as much as making it (0.17 s against 0.19 s of CPU for
300,000 requests, load 10) and locks nothing, at an upload that comes now and then
(``python bench/outcomes.py`` times the whole upload and the index beside it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from winserve.predlog import store
from winserve.predlog.accuracy import label_text

MAX_SEARCHED = 500_000  # logged rows searched for a key column's values, newest first


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

"""What one prediction request leaves for the log (issue 26), made on the request thread.

::

    after_request hook ──► Entry (plain fields + references: the decoded request, the prediction;
                              │   or the native API's body and answer as bytes, issue 29)
                              │ record_of (here, on the request thread, ~2 µs for one 30-column row;
                              │   the bytes are kept as they are)
                              ▼
                           Record: a tuple of plain values (str, float, int, None, lists of them)
                              │ pickled (bytes; one with bytes in it, with the sender's chunk),
                              │ queued, sent in batches (writer.py)
                              ▼
                           the writer process: replayed (the bytes read into rows), JSON,
                           float64 bytes, SQLite (store.py)

A Record holds no reference into the request: at most MAX_ROWS_STORED of its rows (a uniform
sample of a larger request, picked before any row is copied), so the queue's memory is bounded
by its length whatever the requests' sizes, and a plain tuple pickles ~4x faster than a
NamedTuple (1.5 against 5.7 µs, 30 floats a row, measured). Turning values into JSON, the
costly part (~18 µs a request, profiled in the web process), is the writer process's work.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from winserve.rows import Columns, Matrix, Rows, Values

MAX_ROWS_STORED = 100  # of one request; a CSV job's sample will take the same bound

# A Record's fields, by position (a plain tuple: see above). The first eleven are the
# requests table's own columns, in the order of store.INSERT without token_name, which is
# TOKEN_NAME, last (added after the others, issue 26).
Record = tuple[Any, ...]
(
    REQUEST_ID,
    TIME,
    MODEL,
    VERSION,
    SHA256,
    ROUTE,
    METHOD,
    CALLER,
    LATENCY_MS,
    STATUS,
    N_ROWS,
    LABELS,  # the input columns' names (a tuple, or a number standing for one), or None
    ROWS,  # the input rows (lists, in LABELS' order), or None
    ANSWERS,  # the predictions kept (a list), or None before a prediction
    PROBABILITIES,  # a list of lists, or None
    PICKS,  # the 0-based rows kept of a larger request (sorted), or None when all are kept
    TOKEN_NAME,  # who called (issue 26): a token's name, "local" (this computer) or "-"
) = range(17)


class Entry(NamedTuple):
    """What the request path hands over: plain fields, and the decoded request and its
    prediction by reference (``record_of`` keeps only what the log stores of them); or, from
    the native API, the bytes of the request's body and of its answer, and the model's input
    names as a tuple (``record_of`` keeps them as they are: ``replayed`` reads them in the
    writer process; issue 29)."""

    time: float
    request_id: str
    model: str
    version: int | None
    sha256: str | None
    route: str
    method: str
    caller: str | None
    latency_ms: float
    status: int
    n_rows: int | None
    request: Any = None  # a service.PredictRequest, or the native API's JSON body (bytes)
    names: Sequence[str] | None = None  # the model's input names (for rows sent by position)
    prediction: Any = None  # a backends.base.Prediction, or the native API's answer (bytes)
    token_name: str | None = None  # who called (issue 26)


def input_rows(
    request: Any, names: Sequence[str] | None, picks: Sequence[int] | None
) -> tuple[Sequence[str] | None, list[Any] | None]:
    """(column names, rows as lists) of a decoded request, only the rows ``picks`` (None: all),
    picked before anything is copied; (None, None) for what the log does not store yet
    (tensors, images)."""
    data = request.data
    rows: list[Any]
    if isinstance(data, Columns):
        values = list(data.columns.values())
        if picks is None:
            rows = [list(row) for row in zip(*values, strict=True)]
        else:
            rows = [[column[i] for column in values] for i in picks]
        return list(data.columns), rows
    if isinstance(data, Rows):
        rows = data.rows if picks is None else [data.rows[i] for i in picks]
        first = rows[0] if rows else []
        given = data.names or names
        width = len(first) if isinstance(first, list) else 0
        return (given if given and len(given) == width else [str(j) for j in range(width)]), rows
    if isinstance(data, Matrix):
        rows = (data.matrix if picks is None else data.matrix[list(picks)]).tolist()
        width = len(rows[0]) if rows and isinstance(rows[0], list) else 0
        return (names if names else [str(j) for j in range(width)]), rows
    if isinstance(data, Values):
        chosen = data.values if picks is None else [data.values[i] for i in picks]
        return [names[0] if names else "value"], [[v] for v in chosen]
    return None, None


def record_of(
    entry: Entry, keep_inputs: bool, label_set: Callable[[tuple[str, ...]], Any] = tuple
) -> Record:
    """``entry`` as a Record. ``label_set`` turns the rows' column names (a tuple) into what
    the Record holds of them: the tuple itself, or a number the writer process knows them by
    (writer.py: a model's 30 names were more than half of each pickled Record)."""
    labels: Any = None
    answers: Any = None
    rows = probabilities = picks = None
    prediction = entry.prediction
    if type(prediction) is bytes:  # the native API's bytes: nothing to walk here (issue 29)
        if keep_inputs and entry.request is not None and entry.names is not None:
            labels, rows = label_set(tuple(entry.names)), entry.request
        answers = prediction
    elif prediction is not None:
        answers = prediction.predictions
        probabilities = prediction.probabilities
        count = len(answers)
        if count > MAX_ROWS_STORED:
            picks = sorted(random.sample(range(count), MAX_ROWS_STORED))
            answers = [answers[i] for i in picks]
            if probabilities is not None:
                probabilities = [probabilities[i] for i in picks]
        if keep_inputs and entry.request is not None:
            try:
                names, rows = input_rows(entry.request, entry.names, picks)
            except (IndexError, TypeError, ValueError, AttributeError):
                names = rows = None  # a shape the log does not know: the outputs are kept
            if names is not None and rows is not None:
                labels = label_set(tuple(names))
            else:
                rows = None
    return (
        entry.request_id,
        entry.time,
        entry.model,
        entry.version,
        entry.sha256,
        entry.route,
        entry.method,
        entry.caller,
        entry.latency_ms,
        entry.status,
        entry.n_rows,
        labels,
        rows,
        answers,
        probabilities,
        picks,
        entry.token_name,
    )


def replayed(record: Record) -> Record:
    """A Record whose request came as bytes (the native API's JSON body in ROWS, its answer
    in ANSWERS, the model's input names in LABELS; ``record_of``), as the Record of the same
    request decoded: the JSON read and the rows taken as the web process would have, here in
    the writer process (issue 29: ~15 µs of the request thread's CPU went to walking them)."""
    import json

    from winserve.backends.base import Prediction
    from winserve.protocols import native

    answer = json.loads(record[ANSWERS])
    prediction = Prediction(answer["predictions"], answer.get("probabilities"), None)
    body = record[ROWS]
    request = None
    if body is not None:
        try:  # as bodies.json_body read it in the web process, which accepted it
            sent = json.loads(body.decode("utf-8-sig"))
            found = _records_rows(sent) if len(prediction.predictions) <= MAX_ROWS_STORED else None
            if found is not None:  # the usual body, every row kept: as record_of keeps it
                labels, rows = found
                kept = (labels, rows, prediction.predictions, prediction.probabilities, None)
                return (*record[:LABELS], *kept, *record[PICKS + 1 :])
            request = native.decode(sent, False)
        except Exception:  # not for a body the web process decoded; the outputs are kept
            request = None
    entry = Entry(record[TIME], record[REQUEST_ID], *record[MODEL:LABELS])._replace(
        request=request, names=record[LABELS], prediction=prediction, token_name=record[TOKEN_NAME]
    )
    built = record_of(entry, request is not None)
    # its rows and answers as read, every other field as the web process made it
    return (*record[:LABELS], *built[LABELS : PICKS + 1], *record[PICKS + 1 :])


def _records_rows(sent: Any) -> tuple[tuple[str, ...], list[list[Any]]] | None:
    """(column names, rows) of a body of records (one object, or a list of objects naming
    the same columns), as ``input_rows`` takes them from the decoded request, without its
    columns built and turned back into rows first (issue 29: the writer process's part of a
    request); None for any other body (``native.decode`` then reads it)."""
    if isinstance(sent, dict):
        if "columns" in sent or "data" in sent or set(sent) == {"inputs"}:
            return None  # a split body, or tensors (native.decode)
        sent = [sent]
    if not isinstance(sent, list) or not sent or not all(type(row) is dict for row in sent):
        return None
    keys = sent[0].keys()
    names = tuple(keys)
    if not names or any(row.keys() != keys for row in sent):
        return None
    if len(names) == 1:
        return names, [[row[names[0]]] for row in sent]
    pick = operator.itemgetter(*names)  # in the first row's order, as native.decode takes them
    return names, [list(pick(row)) for row in sent]

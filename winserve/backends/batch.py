"""A batch: the calls that share one model call, their rows merged in and the answer split out.

::

    PoolBackend ─► Call(payload, rows, deadline) ─► queues.Waiting ─► a batch of Calls
         │ call.wait(deadline)                                          │ merge_payloads
         │                                                              ▼ one model call
         ◄── call.resolve(Prediction | error) ◄── deliver(calls, answer) (host answer record)

A request that finds an idle replica and nobody else in the pool makes its model call itself,
with no ``Call`` (``PoolBackend.predict``: the lone call, issue 29); everything that queues is
a ``Call``. What a batch may hold: rows of a table merge with any other rows; tensors only
with tensors of the same per-row shapes and dtypes (``batch_key``), up to a size in bytes
(``payload_bytes``, issue 24); the pool caps a batch in rows too.

``deliver`` gives each call its own rows of the batch's answer: its predictions (and
probabilities and scores when it asked for them), or, when the host isolated failing rows
(``ModelHost.predict``), the error of its own first bad row with every row's answer attached
for CSV scoring (``backends.base.row_errors``), or, for a call the model refused as a whole
though each of its rows passes alone, the model's error for it (issue 23: never answers the
model gave other rows, not its). A call alone in its model call gets the call's error, as it
always has. ``merge_payloads`` tells the host where each call's rows start (``CALL_STARTS``).
A call whose own rows the model refused is remembered (``remember_refused``): the same rows
come next time as a ``solo`` call, which cannot fail a batch of others (issue 23).

A number matrix may carry ``WITHIN_FLOAT32`` (the web process checked it finite, issue 23):
merged payloads keep it only when every one of them had it. The pool's batching helpers lived
in ``winserve.rows`` until issue 23 moved them here, beside their one user.
"""

from __future__ import annotations

import logging
import pickle
import threading
from typing import Any

from winserve.backends.base import Prediction, answered, prediction_from
from winserve.errors import ModelTimeout, WinserveError
from winserve.host.answers import AskAnswer, ErrorRecord, Failed, Isolated, PredictAnswer
from winserve.rows import CALL_STARTS, WITHIN_FLOAT32, Payload

log = logging.getLogger("winserve.pool")


class Call:
    """One queued request's rows on their way to a replica, and the answer once there is one.

    The first ``resolve`` wins (the dispatcher's answer, or the caller's own timeout). Its
    caller waits on a lock held from the start and released by that ``resolve``: a
    ``threading.Event`` (a Condition, a lock made for each wait, ``notify_all``) cost the web
    process more per request than the queue itself (issue 14). A scoring job's chunk is a
    ``background`` call: the pool queues it apart (``queues.py``, issue 29)."""

    __slots__ = (
        "_answered",
        "_claimed",
        "asked",
        "background",
        "deadline",
        "error",
        "key",
        "nbytes",
        "payload",
        "proba",
        "record",
        "result",
        "retried",
        "rows",
        "scores",
        "solo",
        "timeout",
    )

    def __init__(
        self,
        payload: Payload,
        rows: int,
        proba: bool,
        deadline: float,
        timeout: float,
        scores: bool = False,
        background: bool = False,
    ) -> None:
        self.payload, self.rows, self.proba, self.scores = payload, rows, proba, scores
        # a scoring job's chunk: every interactive call waiting goes first (issue 29)
        self.background = background
        self.deadline, self.timeout = deadline, timeout
        # tensors merge only with tensors of their per-row shapes, up to a size (issue 24);
        # rows of a table with any other rows (no call made for them: issue 29)
        if "tensors" in payload:
            self.key, self.nbytes = batch_key(payload), payload_bytes(payload)
        else:
            self.key, self.nbytes = None, 0
        self.result: Prediction | None = None
        self.error: WinserveError | None = None
        self.solo = self.retried = False
        # the same rows were refused alone lately: merged, they would fail the batch and
        # cost every call in it a model call of its own (issue 23: 10 clients sending bad
        # rows slowed 10 good ones 8x). Only where the call goes: never what it is answered
        if _REFUSED and rows <= REFUSED_ROWS and "tensors" not in payload:
            self.solo = _digest(payload) in _REFUSED
        # a host call beside predict (issue 25): (method, options), answered with its record
        self.asked: tuple[str, dict[str, Any]] | None = None
        self.record: AskAnswer | None = None
        self._claimed = threading.Lock()  # taken by the first resolve, never released
        self._answered = threading.Lock()  # held until the answer is there
        self._answered.acquire()

    @property
    def done(self) -> bool:
        return self._claimed.locked()

    def resolve(self, result: Prediction | None = None, error: WinserveError | None = None) -> None:
        if not self._claimed.acquire(blocking=False):  # answered already: that answer stays
            return
        self.result, self.error = result, error
        self._answered.release()

    def wait(self, timeout: float) -> bool:
        """Whether the answer came within ``timeout`` seconds (one waiter: the caller)."""
        return self._answered.acquire(timeout=timeout)

    def timed_out(self) -> ModelTimeout:
        return ModelTimeout(
            f"the model did not answer within {self.timeout:g} s (setting: timeout)"
        )


# ---- the rows in: one payload for the model call ----


def row_count(payload: Payload) -> int:
    """How many rows ``payload`` carries (a batch's answer is split back by them)."""
    if "tensors" in payload:
        return len(next(iter(payload["tensors"].values()), []))
    if "matrix" in payload:
        return int(payload["matrix"].shape[0])
    if "columns" in payload:
        return len(next(iter(payload["columns"].values()), []))
    return len(payload["rows"])


def merge_payloads(payloads: list[Payload]) -> Payload:
    """One payload holding every row of ``payloads``, in order (for a batched model call),
    with each one's first row (``CALL_STARTS``): when the model refuses the batch, the host
    answers each call alone (``host.isolate``, issue 23)."""
    if len(payloads) == 1:
        return payloads[0]
    merged = _merged(payloads)
    starts, start = [], 0
    for payload in payloads:
        starts.append(start)
        start += row_count(payload)
    merged[CALL_STARTS] = starts
    return merged


def _merged(payloads: list[Payload]) -> Payload:
    import numpy as np

    first = payloads[0]
    if "tensors" in first:  # the pool merges only payloads of one batch_key
        return {
            "tensors": {
                name: _stacked([p["tensors"][name] for p in payloads]) for name in first["tensors"]
            }
        }
    if all("matrix" in p for p in payloads):
        merged: Payload = {"matrix": np.concatenate([p["matrix"] for p in payloads])}
        if all(p.get(WITHIN_FLOAT32) for p in payloads):
            merged[WITHIN_FLOAT32] = True
        return merged
    if all("columns" in p for p in payloads):
        return {
            "columns": {
                name: [v for p in payloads for v in p["columns"][name]] for name in first["columns"]
            }
        }
    return {"rows": [row for p in payloads for row in _rows(p)]}


def batch_key(payload: Payload) -> Any:
    """What payloads must share to go into one call: ``None`` for rows of a table (any of
    them merge), each input's per-row shape and dtype for tensors (images: any size, they
    are resized in the host)."""
    tensors = payload.get("tensors")
    if tensors is None:
        return None
    return tuple(
        (name, "image") if isinstance(value, list) else (name, value.shape[1:], value.dtype.str)
        for name, value in tensors.items()
    )


def payload_bytes(payload: Payload) -> int:
    """About how many bytes ``payload`` carries to the model (tensors and images; 0 else)."""
    tensors = payload.get("tensors")
    if tensors is None:
        return 0
    return sum(
        sum(map(len, value)) if isinstance(value, list) else int(value.nbytes)
        for value in tensors.values()
    )


def _stacked(values: list[Any]) -> Any:
    if isinstance(values[0], list):
        return [item for value in values for item in value]
    import numpy as np

    return np.concatenate(values)


def _rows(payload: Payload) -> list[Any]:
    if "rows" in payload:
        return list(payload["rows"])
    if "matrix" in payload:
        rows: list[Any] = payload["matrix"].tolist()
        return rows
    columns = list(payload["columns"].values())
    return [list(row) for row in zip(*columns, strict=True)]


# ---- the answer out: each call's rows ----


def deliver(calls: list[Call], record: PredictAnswer) -> None:
    """Split one model call's answer back into each call's rows. After an error, a call the
    model refused as a whole, though none of its rows fails alone (``isolated["refused"]``,
    issue 23), gets the model's own error for it, no rows attached; a call with a row the host
    isolated as failing gets that row's error (a call alone in the model call gets the
    call's, as it always has), with the answers of its rows attached for CSV scoring
    (``row_errors``); the other calls get their predictions."""
    if len(calls) == 1 and record["ok"]:  # one call queued alone: nothing to split
        call = calls[0]
        call.resolve(answered(record, call.proba, call.scores))
        return
    if record["ok"]:
        predictions, probabilities = record["predictions"], record.get("probabilities")
        scores, failed, refused = record.get("scores"), {}, {}
    else:
        isolated = record.get("isolated")
        if isolated is None:  # one row, or an error not about rows (no model loaded)
            for call in calls:
                call.resolve(error=error_of(record))
            if len(calls) == 1 and record["error"].get("input_error"):
                remember_refused(calls[0])
            return
        predictions, probabilities = isolated["predictions"], isolated.get("probabilities")
        scores = isolated.get("scores")
        failed = dict(isolated["errors"])
        refused = dict(isolated.get("refused") or ())
    start = 0
    for call in calls:
        end = start + call.rows
        if start in refused:  # refused as a whole: the model's error, not rows answered alone
            call.resolve(error=error_of({"ok": False, "error": refused[start]}))
            if refused[start].get("input_error"):
                remember_refused(call)
            start = end
            continue
        mine: Isolated = {
            "predictions": predictions[start:end],
            "probabilities": (
                None if probabilities is None or not call.proba else probabilities[start:end]
            ),
            "scores": None if scores is None or not call.scores else scores[start:end],
            "errors": [],
        }
        bad = [row for row in range(start, end) if row in failed] if failed else []
        if not bad:
            call.resolve(Prediction(mine["predictions"], mine["probabilities"], mine["scores"]))
        else:
            mine["errors"] = [(row - start, failed[row]) for row in bad]
            error: ErrorRecord = (
                record["error"] if len(calls) == 1 and not record["ok"] else failed[bad[0]]
            )
            call.resolve(error=error_of({"ok": False, "error": error, "isolated": mine}))
            if error.get("input_error"):
                remember_refused(call)
        start = end


# ---- calls refused alone lately: they run alone (issue 23) ----

REFUSED_ROWS = 16  # calls of at most this many rows are remembered when refused
REFUSED_KEPT = 256  # that many, the oldest forgotten first
_REFUSED: dict[bytes, None] = {}
_refused_lock = threading.Lock()


def _digest(payload: Payload) -> bytes:
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def remember_refused(call: Call) -> None:
    """``call``'s rows were refused by the model without other calls' rows: the next call of
    the same rows runs alone (``Call.solo``), so it cannot fail a batch of good calls."""
    if call.rows > REFUSED_ROWS or "tensors" in call.payload:
        return
    key = _digest(call.payload)
    with _refused_lock:
        _REFUSED[key] = None
        while len(_REFUSED) > REFUSED_KEPT:
            del _REFUSED[next(iter(_REFUSED))]


def error_of(record: Failed) -> WinserveError:
    """The error a failed host record stands for (logged once, with the model's traceback)."""
    try:
        prediction_from(record, log)
    except WinserveError as error:
        return error
    raise AssertionError("a failed record made a prediction")  # pragma: no cover

"""``Call``: one request's rows on their way through the pool, and the split of a batch's answer.

::

    PoolBackend.predict ─► Call(payload, rows, deadline) ─► queue ─► a batch of Calls
         │ call.wait(deadline)                                           │ one model call
         ◄── call.resolve(Prediction | error) ◄── deliver(calls, answer) ◄┘ (host answer record)

``deliver`` gives each call its own rows of the batch's answer: its predictions (and
probabilities and scores when it asked for them), or, when the host isolated failing rows
(``ModelHost.predict``), the error of its own first bad row with every row's answer attached
for CSV scoring (``backends.base.row_errors``). A call alone in its model call gets the
call's error, as it always has. A scoring job's chunk is a ``background`` call: the pool
queues it apart and takes it only when no interactive call waits (issue 29).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from winserve.backends.base import Prediction, prediction_from
from winserve.errors import ModelTimeout, WinserveError
from winserve.host.answers import AskAnswer, ErrorRecord, Failed, Isolated, PredictAnswer
from winserve.rows import Payload, batch_key, payload_bytes

log = logging.getLogger("winserve.pool")


class Call:
    """One request's rows on their way to a replica, and the answer once there is one.

    The first ``resolve`` wins (the dispatcher's answer, or the caller's own timeout). Its
    caller waits on a lock held from the start and released by that ``resolve``: a
    ``threading.Event`` (a Condition, a lock made for each wait, ``notify_all``) cost the web
    process more per request than the queue itself (issue 14)."""

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
        # tensors merge only with tensors of their per-row shapes, up to a size (issue 24)
        self.key, self.nbytes = batch_key(payload), payload_bytes(payload)
        self.result: Prediction | None = None
        self.error: WinserveError | None = None
        self.solo = self.retried = False
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


def deliver(calls: list[Call], record: PredictAnswer) -> None:
    """Split one model call's answer back into each call's rows. After an error, a call with
    a row the host isolated as failing gets that row's error (a call alone in the model call
    gets the call's, as it always has), with the answers of its rows attached for CSV scoring
    (``row_errors``); the other calls get their predictions."""
    if len(calls) == 1 and record["ok"]:  # the usual call at low load: nothing to split
        call = calls[0]
        call.resolve(
            Prediction(
                record["predictions"],
                record.get("probabilities") if call.proba else None,
                record.get("scores") if call.scores else None,
            )
        )
        return
    if record["ok"]:
        predictions, probabilities = record["predictions"], record.get("probabilities")
        scores, failed = record.get("scores"), {}
    else:
        isolated = record.get("isolated")
        if isolated is None:  # one row, or an error not about rows (no model loaded)
            for call in calls:
                call.resolve(error=error_of(record))
            return
        predictions, probabilities = isolated["predictions"], isolated.get("probabilities")
        scores = isolated.get("scores")
        failed = dict(isolated["errors"])
    start = 0
    for call in calls:
        end = start + call.rows
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
        start = end


def error_of(record: Failed) -> WinserveError:
    """The error a failed host record stands for (logged once, with the model's traceback)."""
    try:
        prediction_from(record, log)
    except WinserveError as error:
        return error
    raise AssertionError("a failed record made a prediction")  # pragma: no cover

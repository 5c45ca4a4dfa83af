"""The rows of a failed batch: which calls and rows the model fails on, each with its own
error, and the others' answers, found in the same call (issues 14, 23).

::

    ModelHost.predict(payload) raised on a payload of n ≥ 2 rows
      refused(payload, answer, …, failed):
        parts(payload) ─► n, part(lo, hi): rows lo:hi as the web process would have sent them
        the calls merged into it (CALL_STARTS; a lone call or a CSV chunk: one call)
          several calls: halved by whole calls (each asked alone once both halves failed
                         DENSE_LEVELS levels in a row: many bad requests); a call's rows
                         always in one model call, as if it had come alone or in a batch
                         that passes ─► the model's own answers
          a call that fails alone: isolate(rows, part, answer, …): halve each failing part
            some rows fail alone ─► those rows' errors, the others' answers
            none does ─► the model's error for the call ("refused"), no row answered: the
                         model refused these rows together, and answers it gave other
                         groupings of them are not its answer to this call (issue 23)
        ─► Predicted (every call passed without the others) | Failed + Isolated
           {"predictions": [... None where a row failed], "probabilities", "scores",
           "errors": [(row, ErrorRecord)], "refused": [(call's first row, ErrorRecord)]}
           | Failed (a lone call refused)

The one way winserve isolates bad rows: the pool answers each request of a batch from it, CSV
scoring each line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from winserve.host.answers import (
    ErrorRecord,
    Failed,
    Isolated,
    PredictAnswer,
    Predicted,
    error_record,
    row_error,
)
from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE
from winserve.host.tensors import parts as tensor_parts
from winserve.rows import CALL_STARTS

# both halves of a group of calls failing this many levels in a row: its calls are asked one
# by one (``refused``). Host CPU, a churn pipeline, 20 one-row calls, best of 5: 10 bad of 20
# 188 ms halving alone, 123 ms each call alone, 138 ms this; 3 bad 113, 156, 122; 1 bad 51,
# 167 (estimated: 19 calls of 8 ms), 50
DENSE_LEVELS = 2
# where pandas names the failing value's place in the rows it was given ("time data 'x'
# doesn't match format '%Y-%m-%d', at position 0"): for a row asked alone always 0
ALONE_POSITION = re.compile(r",? at position 0\b")
ISOLATE_SECONDS = 2.0  # finding the failing rows of a batch takes no longer (see isolate)

# a merged call the deadline left unasked alone: its rows may be fine (issue 23)
UNTRIED: ErrorRecord = {
    "type": "BatchRefused",
    "message": (
        "the model refused the batch this request shared with others, and there was no time "
        "left to ask it alone; send it again"
    ),
    "input_error": False,
    "traceback": "",
}

Part = Callable[[int, int], dict[str, Any]]
Answer = Callable[[dict[str, Any], bool, bool], Predicted]


def refused(
    payload: dict[str, Any], answer: Answer, proba: bool, scores: bool, failed: Failed
) -> PredictAnswer:
    """What the host answers for ``payload`` when the model raised ``failed`` on it as a
    whole: the calls merged into it answered alone or in groups of whole calls (halved as
    rows are; a group that passes is a batch that passes), and the rows of a call failing alone
    isolated (``isolate``), a call none of whose rows fails alone refused with the model's
    error for it (issue 23). ``answer`` is the host's own call (it raises); ``scores``: the
    model has a score method and it was asked. One deadline (``ISOLATE_SECONDS``) for all:
    past it, a call not yet asked alone gets ``UNTRIED`` (a 500 saying so), not the batch's
    error, which may be another user's rows' (issue 23)."""
    count, part = parts(payload)
    if count < 2:
        return failed
    end = time.perf_counter() + ISOLATE_SECONDS
    starts = list(payload.get(CALL_STARTS) or [0])
    predictions: list[Any] = [None] * count
    probabilities: list[Any] | None = [None] * count if proba else None
    scored: list[Any] | None = [None] * count if scores else None
    errors: list[tuple[int, ErrorRecord]] = []
    refusals: list[tuple[int, ErrorRecord]] = []
    calls = list(zip(starts, [*starts[1:], count], strict=True))

    def tried(first: int, last: int) -> ErrorRecord | None:
        """Calls first:last merged as the pool would have sent them: None once answered."""
        lo, hi = calls[first][0], calls[last - 1][1]
        try:
            answered = answer(part(lo, hi), proba, scores)
        except Exception as exc:
            return error_record(exc)["error"]
        _fill(predictions, probabilities, scored, lo, hi, answered)
        return None

    # groups of calls known to fail, with the error they raised and how many levels in a row
    # both halves failed. Halved like rows (one bad request among many costs ~2·log2(n)
    # calls); where both halves failed DENSE_LEVELS levels in a row, bad requests are many
    # (a flood of them beside good ones, issue 23): each call of the group is asked alone
    failing: list[tuple[int, int, ErrorRecord, int]] = [(0, len(calls), failed["error"], 0)]
    while failing:
        first, last, error, streak = failing.pop()
        dense = streak >= DENSE_LEVELS
        if last - first == 1:  # one call, failing alone: its rows, as isolate finds them
            lo, hi = calls[first]
            if hi - lo == 1:  # one row: its error is the row's
                errors.append((lo, row_error(error)))
                continue
            found = isolate(hi - lo, _shifted(part, lo), answer, proba, scores, error, end)
            if not found["errors"]:
                refusals.append((lo, error))
                continue
            _fill(predictions, probabilities, scored, lo, hi, found)
            errors.extend((lo + row, record) for row, record in found["errors"])
            continue
        middle = (first + last) // 2
        groups = (
            [(k, k + 1) for k in range(first, last)] if dense else [(first, middle), (middle, last)]
        )
        failed_groups = []
        for a, b in groups:
            if time.perf_counter() > end:  # not the batch's error: it may be another call's
                refusals.extend((calls[k][0], UNTRIED) for k in range(a, b))
                continue
            if (raised := tried(a, b)) is not None:
                failed_groups.append((a, b, raised))
        both = not dense and len(failed_groups) == 2
        failing.extend(
            (a, b, raised, streak + 1 if both else 0) for a, b, raised in reversed(failed_groups)
        )
    if not errors and not refusals:  # each call answered alone: each its own answers
        return {
            "ok": True,
            "predictions": predictions,
            "probabilities": probabilities,
            "scores": scored,
        }
    if not errors and len(starts) == 1:  # a lone call refused as a whole: the model's error
        return failed
    isolated: Isolated = {
        "predictions": predictions,
        "probabilities": probabilities,
        "scores": scored,
        "errors": errors,
    }
    if refusals:
        isolated["refused"] = refusals
    failed["isolated"] = isolated
    return failed


def _shifted(part: Part, offset: int) -> Part:
    return lambda lo, hi: part(offset + lo, offset + hi)


def _fill(
    predictions: list[Any],
    probabilities: list[Any] | None,
    scored: list[Any] | None,
    lo: int,
    hi: int,
    answered: Predicted | Isolated,
) -> None:
    predictions[lo:hi] = answered["predictions"]
    if probabilities is not None:
        probabilities[lo:hi] = answered.get("probabilities") or [None] * (hi - lo)
    if scored is not None:
        scored[lo:hi] = answered.get("scores") or [None] * (hi - lo)


def isolate(
    count: int,
    part: Part,
    answer: Answer,
    proba: bool,
    scores: bool,
    error: ErrorRecord,
    end: float | None = None,
) -> Isolated:
    """Which of ``count`` rows the model fails on, by halving the parts that fail, and the
    answers of all the others: every row's prediction (``None`` where it failed) and
    ``errors``, (row, error) for each failed row, as that row alone gets it. ``answer`` is the
    host's own call (it raises); ``scores``: the model has a score method and it was asked.

    k bad rows among n cost about 2k·log2(n/k) calls; once ``ISOLATE_SECONDS`` are spent, the
    rows of a part still failing get that part's error, so a batch of many bad rows cannot
    keep the host past its deadline (``end``, a ``time.perf_counter`` time: that budget from
    now when not given)."""
    predictions: list[Any] = [None] * count
    probabilities: list[Any] | None = [None] * count if proba else None
    scored: list[Any] | None = [None] * count if scores else None
    errors: list[tuple[int, ErrorRecord]] = []
    if end is None:
        end = time.perf_counter() + ISOLATE_SECONDS
    failing = [(0, count, error)]  # parts known to fail, with the error they raised
    while failing:
        lo, hi, error = failing.pop()
        if hi - lo == 1:
            errors.append((lo, row_error(_alone(error))))
            continue
        if time.perf_counter() > end:
            errors.extend((row, row_error(error)) for row in range(lo, hi))
            continue
        middle = (lo + hi) // 2
        for start, stop in ((middle, hi), (lo, middle)):  # the first half is halved first
            try:
                answered = answer(part(start, stop), proba, scores)
            except Exception as exc:
                failing.append((start, stop, error_record(exc)["error"]))
                continue
            predictions[start:stop] = answered["predictions"]
            if probabilities is not None:
                probabilities[start:stop] = answered.get("probabilities") or []
            if scored is not None:
                scored[start:stop] = answered.get("scores") or []
    return {
        "predictions": predictions,
        "probabilities": probabilities,
        "scores": scored,
        "errors": sorted(errors, key=lambda item: item[0]),
    }


def _alone(error: ErrorRecord) -> ErrorRecord:
    """The error of a row asked alone, without the place in that one-row call which pandas
    names ("…, at position 0"): the row is named by its request's count, not the call's."""
    message = str(error.get("message", ""))
    shorter = ALONE_POSITION.sub("", message)
    return error if shorter == message else {**error, "message": shorter}


def parts(payload: dict[str, Any]) -> tuple[int, Part]:
    """How many rows ``payload`` holds, and a payload of rows ``lo:hi`` of it, as the web
    process would have sent those rows alone (``build_input`` makes each part's frame, so a
    part's column types are those of its own rows)."""
    if MATRIX_BYTES in payload:
        import numpy as np

        flat = np.frombuffer(payload[MATRIX_BYTES], dtype=np.float64)
        payload = {"matrix": flat.reshape(payload[MATRIX_SHAPE])}
    if "tensors" in payload:  # tensors and images (issue 24)
        return tensor_parts(payload)
    if "matrix" in payload:
        matrix = payload["matrix"]
        # a copy: the model may write into its input, and another part shares these rows
        return len(matrix), lambda lo, hi: {"matrix": matrix[lo:hi].copy()}
    if "columns" in payload:
        columns = payload["columns"]
        count = len(next(iter(columns.values()), []))
        return count, lambda lo, hi: {"columns": {k: v[lo:hi] for k, v in columns.items()}}
    rows = payload.get("rows", [])
    return len(rows), lambda lo, hi: {"rows": rows[lo:hi]}

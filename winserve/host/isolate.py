"""The rows of a failed batch: which rows the model fails on, each with its own error, and the
others' answers, found in the same call (issue 14).

::

    ModelHost.predict(payload) raised on a payload of n ≥ 2 rows
      parts(payload) ─► n, part(lo, hi): rows lo:hi as the web process would have sent them alone
      isolate(n, part, answer, …): halve each failing part, answer(part) for each half
        ─► Isolated {"predictions": [... None where a row failed], "probabilities", "scores",
                     "errors": [(row, ErrorRecord), ...]}
      no row fails alone ─► the call answers every row (the batch as a whole was the problem)

The one way winserve isolates bad rows: the pool answers each request of a batch from it, CSV
scoring each line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from winserve.host.answers import ErrorRecord, Isolated, Predicted, error_record, row_error
from winserve.host.inputs import MATRIX_BYTES, MATRIX_SHAPE
from winserve.host.tensors import parts as tensor_parts

ISOLATE_SECONDS = 2.0  # finding the failing rows of a batch takes no longer (see isolate)

Part = Callable[[int, int], dict[str, Any]]
Answer = Callable[[dict[str, Any], bool, bool], Predicted]


def isolate(
    count: int,
    part: Part,
    answer: Answer,
    proba: bool,
    scores: bool,
    error: ErrorRecord,
) -> Isolated:
    """Which of ``count`` rows the model fails on, by halving the parts that fail, and the
    answers of all the others: every row's prediction (``None`` where it failed) and
    ``errors``, (row, error) for each failed row, as that row alone gets it. ``answer`` is the
    host's own call (it raises); ``scores``: the model has a score method and it was asked.

    k bad rows among n cost about 2k·log2(n/k) calls; once ``ISOLATE_SECONDS`` are spent, the
    rows of a part still failing get that part's error, so a batch of many bad rows cannot
    keep the host past its deadline."""
    predictions: list[Any] = [None] * count
    probabilities: list[Any] | None = [None] * count if proba else None
    scored: list[Any] | None = [None] * count if scores else None
    errors: list[tuple[int, ErrorRecord]] = []
    end = time.perf_counter() + ISOLATE_SECONDS
    failing = [(0, count, error)]  # parts known to fail, with the error they raised
    while failing:
        lo, hi, error = failing.pop()
        if hi - lo == 1 or time.perf_counter() > end:
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

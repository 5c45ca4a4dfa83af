"""The one service every protocol and page shares: a checked request, predicted by the backend.

::

    protocol / page / CSV job ── PredictRequest (winserve.rows) ──► Service.predict
        │ winserve.validate.prepare: checked against the ModelInfo taken for this request
        │ (cells converted by winserve.cells; problems name the row and the column)
        ▼
    Prepared.payload ──► Backend.predict (pool / local / Ray) ──► model host
        ▲
    Prediction ◄── a batch's refused rows named one by one (``_rows_named``)

``check`` validates without predicting (the page, CSV scoring: bad rows are reported, not
raised); ``explain`` and ``whatif`` check rows as ``predict`` does and ask the host for the
explanation (issue 25). ``PredictRequest`` and ``Prepared`` are importable from here as well
as from their own modules (``winserve.rows``, ``winserve.validate``), for their callers.
"""

from __future__ import annotations

from typing import Any, TypedDict

from winserve.backends.base import Backend, Prediction, row_errors
from winserve.errors import BadRequest, ModelFailed, ModelInputError, ModelUnavailable
from winserve.failures import public_reason
from winserve.model_info import ModelInfo
from winserve.rows import PredictRequest
from winserve.validate import MAX_PROBLEMS_SHOWN, Prepared, prepare

__all__ = ["PredictRequest", "Prepared", "Service", "WhatIf", "failed_error", "prepare"]


class WhatIf(TypedDict):
    """One row's what-if (issue 25): a curve per input swept over its reference range
    (``{column, kind, values, predictions, probabilities?}``), and the classes of the
    probabilities."""

    curves: list[dict[str, Any]]
    classes: list[Any]


def failed_error(reason: str, retry_after: int = 2) -> ModelFailed:
    """The error every route answers for a model that failed to load, with why in one line."""
    why = public_reason(reason) or "see the console of the server"
    return ModelFailed(f"the model failed and is not served: {why}", retry_after=retry_after)


def _rows_named(error: ModelInputError) -> ModelInputError:
    """``error`` naming the rows the model refused, each with its own reason, when the host
    isolated them in a batch (``row_errors``): "row 2: …", as a row the service itself
    refuses is named, whatever the batch's shape (records, lists, split; issue 22)."""
    found = row_errors(error)
    if found is None or not found.errors:
        return error
    failed = sorted(found.errors.items())
    shown = "; ".join(f"row {row + 1}: {e.message}" for row, e in failed[:MAX_PROBLEMS_SHOWN])
    if len(failed) > MAX_PROBLEMS_SHOWN:
        shown += f"; and {len(failed) - MAX_PROBLEMS_SHOWN} more rows"
    return ModelInputError(shown)


class Service:
    """What the views call: the model's description, and predictions for decoded rows."""

    def __init__(self, backend: Backend, *, max_rows: int, max_text: int = 10_000) -> None:
        self.backend = backend
        self.max_rows = max_rows
        self.max_text = max_text
        # users' model calls so far (not a scoring job's): while they come, a job's chunks
        # get smaller, so that each waits less behind one (scoring.chunk_size, issue 29). A
        # count read for its changes; an increment lost to a race costs nothing.
        self.interactive_calls = 0

    def info(self) -> ModelInfo:
        """The model's description; ``ModelFailed`` when its load failed (issue 22: a model
        whose sample prediction failed said "still loading", and never would be)."""
        try:
            return self.backend.describe()
        except ModelUnavailable as exc:
            health = self.backend.health()
            if health.status != "failed" or isinstance(exc, ModelFailed):
                raise
            raise failed_error(health.reason, exc.retry_after) from None

    def predict(self, request: PredictRequest, info: ModelInfo | None = None) -> Prediction:
        """Predictions for ``request``, checked against ``info``: the snapshot of the model's
        description the caller took for this request (one per request), else the current one."""
        info = info or self.info()
        prepared = prepare(request, info, max_rows=self.max_rows, max_text=self.max_text)
        self.interactive_calls += 1
        try:
            return self.backend.predict(
                prepared.payload,
                # a multi-output classifier's per output: only the native API asks (issue 22)
                request.proba and (info.has_proba or bool(info.extra.get("output_classes"))),
                scores=request.scores and bool(info.score_method),
            )
        except ModelInputError as exc:
            raise _rows_named(exc) from None

    def check(self, request: PredictRequest, *, max_rows: int | None = None) -> Prepared:
        """Validate without predicting; bad rows are reported, not raised (page, CSV)."""
        limit = self.max_rows if max_rows is None else max_rows
        info = self.info()
        return prepare(request, info, max_rows=limit, partial=True, max_text=self.max_text)

    def explain(self, request: PredictRequest, info: ModelInfo | None = None) -> list[Any]:
        """Each row's explanation (issue 25, ``winserve.explaining``): its Shapley values
        against the reference sample, checked as ``predict`` checks rows."""
        from winserve import explaining

        info = info or self.info()
        explaining.require_reference(info)
        prepared = prepare(request, info, max_rows=self.max_rows, max_text=self.max_text)
        self.interactive_calls += 1
        record = self.backend.ask("explain", prepared.payload, {})
        return list(explaining.answer(record)["explanations"])

    def whatif(
        self, request: PredictRequest, columns: list[str], info: ModelInfo | None = None
    ) -> WhatIf:
        """One row's prediction as each of ``columns`` (all when empty) sweeps its reference
        range (issue 25): ``{"curves": [...], "classes": [...]}``."""
        from winserve import explaining

        info = info or self.info()
        explaining.require_reference(info)
        if request.n_rows != 1:
            raise BadRequest(f"what-if takes one row; {request.n_rows} were sent")
        prepared = prepare(request, info, max_rows=1, max_text=self.max_text)
        self.interactive_calls += 1
        record = explaining.answer(
            self.backend.ask("whatif", prepared.payload, {"columns": columns})
        )
        return {"curves": record["curves"], "classes": record.get("classes", [])}

    def predict_prepared(
        self, prepared: Prepared, proba: bool, scores: bool = False, *, background: bool = False
    ) -> Prediction:
        """Predictions for rows ``check`` validated; ``background``: a scoring job's chunk,
        which waits for every interactive call waiting (issue 29)."""
        info = self.info()
        if background:
            predict = self.backend.predict_background
        else:
            predict = self.backend.predict
            self.interactive_calls += 1
        return predict(
            prepared.payload, proba and info.has_proba, scores=scores and bool(info.score_method)
        )

"""The top reasons of each scored row (issue 25): the inputs that moved its prediction most.

::

    upload with explain=true ──► JobManager.start: the model has a usable reference sample,
        else 409 at once (NoReference: which file to add, how to make it)
    the file ──► at most MAX_EXPLAINED_ROWS rows, counted before any model call
    each row the model answered ──► Service.explain, one row per call (the pool's deadlines
        apply, and other users' requests interleave with the file's rows)
        ──► Shapley values against the reference sample (winserve.host.why)
        ──► the REASONS largest by size, in "reason 1" … "reason 3":
            ``income = 52000: +12.3 %`` (a classifier: percentage points of the predicted
            class's probability, as on the page) or ``income = 52000: +1234`` (a regressor:
            the prediction's units)
    an explanation that fails for a reason every row would meet (too slow for the model's
        timeout, a model that cannot be explained) ──► "not explained: …" in "reason 1" of
        that row and of the rest, without asking the model again

A row that got no prediction gets no reasons (its error says why).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from winserve.errors import BadRequest, ModelTimeout, ModelUnavailable, WinserveError
from winserve.explaining import NoReference
from winserve.model_info import ModelInfo
from winserve.scoring.workbook import Cells
from winserve.service import PredictRequest, Service
from winserve.spreadsheet import Dialect

REASONS = 3  # reason columns at most (fewer for a model of fewer inputs)
# One row's explanation costs up to 20,000 model rows (winserve.host.explain.MAX_ROWS): 0.6-0.9 s
# for a 200-tree forest of 20 inputs on the team's 2-core machine, so 1,000 rows keep a replica
# busy for about a quarter of an hour; a larger file is refused before any model call.
MAX_EXPLAINED_ROWS = 1000
UNAVAILABLE_WAIT = 120.0  # as long as a chunk's prediction waits for a restarting model
YES = frozenset({"true", "on", "1", "yes"})  # "on": what an HTML checkbox sends
NO = frozenset({"", "false", "off", "0", "no"})


def asked(value: str) -> bool:
    """The upload's ``explain`` field: whether reasons were asked for."""
    text = value.strip().lower()
    if text in YES | NO:
        return text in YES
    raise BadRequest(f"explain must be true or false, not {value[:40]!r}")


def count(info: ModelInfo) -> int:
    """How many reason columns a result gets: REASONS, or one per input when fewer."""
    return min(REASONS, len(info.features))


def names(columns: int) -> list[str]:
    return [f"reason {k + 1}" for k in range(columns)]


def too_many() -> BadRequest:
    return BadRequest(
        f"the file has more than {MAX_EXPLAINED_ROWS:,} rows, the most that are scored with "
        "their reasons (each row's reasons cost the model up to 20,000 predictions): score it "
        "without reasons, or in parts"
    )


def _value(value: Any, number: bool, decimal_comma: bool) -> str:
    """An input as the reason shows it: as the file had it (a number column's decimal mark
    back to the file's), ``missing`` for an empty or NA cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    text = repr(value) if isinstance(value, float) else str(value)
    return text.replace(".", ",") if number and decimal_comma else text


def _effect(contribution: float, classifier: bool, decimal_comma: bool) -> str:
    """``+12.3 %`` (points of a probability) or a regressor's units with four significant
    digits, never in scientific notation (``+15850``, not ``+1.585e+04``: a spreadsheet cell)."""
    if classifier:
        text = f"{100 * contribution:+.1f} %"
    else:
        digits = 3 - math.floor(math.log10(abs(contribution))) if contribution else 0
        text = f"{round(contribution, digits):+.{max(0, digits)}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text  # +0.5, not +0.5000
    return text.replace(".", ",") if decimal_comma else text


def _counts(contribution: float, classifier: bool) -> bool:
    """Whether an effect is worth a reason: one shown as ``+0.0 %`` moved nothing visible."""
    return abs(100 * contribution) >= 0.05 if classifier else contribution != 0.0


def reason_texts(
    explanation: dict[str, Any],
    row: list[Any],
    info: ModelInfo,
    columns: int,
    decimal_comma: bool = False,
) -> list[str]:
    """The ``columns`` largest contributions of one explanation, largest first (ties in the
    columns' order, as the page's chart), as text."""
    where = {f.name: i for i, f in enumerate(info.features)}
    numbers = {f.name for f in info.features if f.kind == "number"}
    classifier = explanation.get("explained") == "probability"
    found = [(str(c), float(v)) for c, v in explanation["contributions"].items()]
    ordered = [
        item
        for item in sorted(found, key=lambda item: -abs(item[1]))
        if _counts(*item[1:], classifier)
    ][:columns]
    texts = []
    for column, contribution in ordered:
        effect = _effect(contribution, classifier, decimal_comma)
        if column not in where:  # not one of the inputs the row was read into: no value
            texts.append(f"{column}: {effect}")
            continue
        shown = _value(row[where[column]], column in numbers, decimal_comma)
        texts.append(f"{column} = {shown}: {effect}")
    return texts + [""] * (columns - len(texts))


class Reasons:
    """Asks the model version's service for each answered row's explanation and turns it
    into the row's reason cells, written in the file's own way (its ``dialect``). Remembers
    a failure that every row would meet, so a slow model costs one timeout, not one a row."""

    def __init__(self, service: Service, info: ModelInfo, closing: threading.Event) -> None:
        self.service = service
        self.info = info
        self.columns = count(info)
        self._closing = closing
        self._refused = ""  # the message every further row gets, once one failed for good

    def _not_explained(self, message: str, dialect: Dialect | Cells) -> list[Any]:
        return [dialect.write_value(f"not explained: {message}"), *[""] * (self.columns - 1)]

    def _explain(self, row: list[Any]) -> dict[str, Any]:
        request = PredictRequest.from_columns(
            {f.name: [row[i]] for i, f in enumerate(self.info.features)}
        )
        request.cells = True  # typed as the row's prediction was (rows._request)
        waited_until = time.monotonic() + UNAVAILABLE_WAIT
        while True:
            try:
                return dict(self.service.explain(request, self.info)[0])
            except ModelUnavailable:
                if time.monotonic() > waited_until or self._closing.is_set():
                    raise
                time.sleep(0.5)

    def cells(self, row: list[Any], dialect: Dialect | Cells) -> list[Any]:
        """The reason cells of one row the model answered (its inputs as the model got
        them), written as ``dialect`` writes a text."""
        if self._refused:
            return self._not_explained(self._refused, dialect)
        try:
            explanation = self._explain(row)
        except ModelTimeout:
            self._refused = (
                "explaining one row takes this model longer than its timeout allows "
                "(setting: timeout)"
            )
            return self._not_explained(self._refused, dialect)
        except NoReference as exc:  # not explainable (its outputs, its inputs): every row's
            self._refused = exc.message
            return self._not_explained(self._refused, dialect)
        except ModelUnavailable:
            raise  # the job fails as its predictions would
        except WinserveError as exc:  # this row's own problem
            return self._not_explained(exc.message, dialect)
        comma = isinstance(dialect, Dialect) and dialect.decimal_comma
        texts = reason_texts(explanation, row, self.info, self.columns, comma)
        return [dialect.write_value(text) if text else "" for text in texts]

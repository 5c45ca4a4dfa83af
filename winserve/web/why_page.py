"""Why this answer, and what if, on the page (issue 25): the explanation and what-if curves of
the form's row (from the model version this request holds), turned into what the template
shows.

::

    form row ─► Held.explain ────► Why: one sentence (baseline, output), a sorted bar chart
                                      (winserve.web.charts) and its table, in the user's columns
             ─► Held.whatif ─────► [WhatIf]: per input, a line (numbers) or bars (categories)
                                      and its table

A classifier's contributions are percentage points of the predicted class's probability, a
regressor's are in its own units. A model without a reference sample gets ``hint``: one line
saying what the file is and how to make it, and no chart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from winserve import card as cards
from winserve import explaining
from winserve.dataplane import Held
from winserve.errors import WinserveError
from winserve.host.reference import how_to_make
from winserve.model_info import ModelInfo
from winserve.service import PredictRequest
from winserve.web import charts, paths


@dataclass(frozen=True)
class Line:
    """One row of a chart's table: what, the number shown, and the number exactly."""

    label: str
    shown: str
    value: float | None


@dataclass(frozen=True)
class Why:
    sentence: str
    chart: Markup
    lines: list[Line]
    unit_name: str


@dataclass(frozen=True)
class WhatIf:
    column: str
    label: str
    chart: Markup | None  # None: the answers are not numbers (the table still lists them)
    heading: str
    lines: list[Line]


def available(info: ModelInfo) -> bool:
    """Whether the model has a usable reference sample (explanations are on); never for a
    model of images or tensors (issue 24)."""
    if info.tensor_inputs:
        return False
    found = explaining.reference_of(info)
    return found is not None and not found.get("problem")


def hint(info: ModelInfo) -> str:
    """The one line a model without a (usable) reference sample shows instead of charts; a
    model of images or tensors is not told to add one (issue 24: it would change nothing)."""
    if info.tensor_inputs:
        return f"Why this answer: not shown; {explaining.tables_only(info)}."
    found = explaining.reference_of(info)
    if found is not None and found.get("problem"):
        return "Why this answer: not shown, " + paths.public(str(found["problem"]))
    source = info.source if info.sha256 else ""
    return f"Why this answer, and what if: shown under the answer once you {how_to_make(source)}."


def _labels(card: cards.ModelCard, info: ModelInfo) -> dict[str, str]:
    return {f.name: f.label for f in cards.form_fields(card, info)}


def _row_label(label: str, kind: str, value: Any) -> str:
    """``income 52,000`` for a number, ``plan = basic`` for anything else (the form sends
    text: a number column's is read as the validation reads it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{label} missing"
    if kind == "number" and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return f"{label} {value}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{label} {charts.number(float(value))}"
    return f"{label} = {value}"


def explain(
    model: Held,
    info: ModelInfo,
    card: cards.ModelCard,
    asked: PredictRequest,
    row: dict[str, Any],
) -> Why | str:
    """The form row's explanation, or the one line that says why there is none."""
    try:
        found = model.explain(asked, info)[0]
    except WinserveError as exc:
        return "Why this answer: not available, " + paths.public(exc.message)
    labels = _labels(card, info)
    kinds = {f.name: f.kind for f in info.features}
    classifier = found.get("explained") == "probability"
    factor, unit = (100.0, "%") if classifier else (1.0, "")
    baseline, output = float(found["baseline"]), float(found["output"])
    if classifier:
        name = card.class_name(found.get("class"))
        sentence = (
            f"On average over the reference sample the probability of {name} is "
            f"{100 * baseline:.1f} %; for this row it is {100 * output:.1f} %. Each bar is how "
            "many percentage points an input added or took away."
        )
        unit_name = "percentage points"
    else:
        sentence = (
            f"On average over the reference sample the prediction is {charts.number(baseline)}; "
            f"for this row it is {charts.number(output)}. Each bar is how much an input added "
            "or took away."
        )
        unit_name = "the prediction's units"
    entries = [
        (_row_label(labels.get(c, c), kinds.get(c, ""), row.get(c)), float(v))
        for c, v in found["contributions"].items()
    ]
    items = [(label, raw * factor) for label, raw in entries]
    # the same stable order as the chart's: by size, ties in the columns' order
    ordered = sorted(range(len(items)), key=lambda i: -abs(items[i][1]))
    title = "Why this answer: " + "; ".join(
        f"{items[i][0]} {charts.signed(items[i][1], unit)}" for i in ordered
    )
    lines = [Line(items[i][0], charts.signed(items[i][1], unit), entries[i][1]) for i in ordered]
    return Why(sentence, Markup(charts.contribution_chart(items, unit, title)), lines, unit_name)


def _outputs(curve: dict[str, Any], classes: list[Any], predicted: Any) -> list[float] | None:
    """The numbers a curve draws: the predicted class's probability (in %) or the value."""
    probabilities = curve.get("probabilities")
    if probabilities and predicted in classes:
        at = classes.index(predicted)
        try:
            return [100.0 * float(p[at]) for p in probabilities]
        except (TypeError, IndexError):
            return None
    values = curve.get("predictions", [])
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return None


def whatif(
    model: Held,
    info: ModelInfo,
    card: cards.ModelCard,
    asked: PredictRequest,
    row: dict[str, Any],
    predicted: Any,
) -> list[WhatIf] | str:
    """One small chart per input, or the one line that says why there are none."""
    try:
        answer = model.whatif(asked, [], info)
    except WinserveError as exc:
        return "What if: not available, " + paths.public(exc.message)
    labels = _labels(card, info)
    classes = list(answer.get("classes") or [])
    shown_class = card.class_name(predicted) if classes else ""
    unit = "%" if classes and predicted in classes else ""
    result = []
    for curve in answer["curves"]:
        column = str(curve["column"])
        label = labels.get(column, column)
        values = list(curve["values"])
        ys = _outputs(curve, classes, predicted)
        heading = (
            f"Probability of {shown_class} as {label} changes"
            if unit
            else f"Prediction as {label} changes"
        )
        current = row.get(column)
        chart: Markup | None = None
        if ys is not None and values:
            pairs = zip(values, ys, strict=False)
            title = f"{heading}: " + "; ".join(
                f"{_value_text(v)} \u2192 {_y_text(y, unit)}" for v, y in pairs
            )
            numeric = curve.get("kind") == "number" and all(
                isinstance(v, (int, float)) for v in values
            )
            if numeric:
                at = _float(current)
                svg = charts.number_curve(label, values, ys, at, unit, title)
            else:
                now = None if current is None else str(current)
                svg = charts.category_bars(label, [str(v) for v in values], ys, now, unit, title)
            chart = Markup(svg)
        answers = ys if ys is not None else curve.get("predictions", [])
        lines = [
            Line(
                _value_text(v),
                _y_text(y, unit) if ys is not None else str(y),
                float(y) if ys is not None else None,
            )
            for v, y in zip(values, answers, strict=False)
        ]
        result.append(WhatIf(column, label, chart, heading, lines))
    return result


def _value_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return charts.number(float(value))
    return "(missing)" if value is None else str(value)


def _y_text(value: float, unit: str) -> str:
    return f"{value:.1f} %" if unit == "%" else charts.number(value)


def _float(value: Any) -> float | None:
    """The form's text of a number column as a number (None: missing or not a number)."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None

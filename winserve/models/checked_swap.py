"""The checked swap's comparison (issue 26): how far a new version's answers are from the
serving version's on the same rows, and whether that is close enough to swap.

::

    rows (reference sample + recent logged inputs, swap_rows.py)
        ├─► serving version ─► Answers(labels, probabilities, classes, refused rows) ─┐
        └─► new version     ─► Answers(…) ────────────────────────────────────────────┤
                                                                                      ▼
        compare(old, new, regression) ─► Comparison: agreeing rows, each row's difference,
                                         the disagreeing rows
        decide(comparison, threshold) ─► swap or keep the serving version
        swap_when "always" | "agree>=0.95" ─► parse_when ─► threshold (None: always)

Agreement is the share of rows both versions answer alike: equal labels for a classifier
(and any model whose answers are not numbers); for a regressor, values within ``TOLERANCE``
(a half) of the serving version's standard deviation on these rows. A retrain never gives
the same floats, and a tenth (the first rule) refused honest ones: on y = f(x) + noise (noise
8 % of y's spread; bench/swap_tolerance.py: three functions, three recipes) a 30-tree forest
retrained with a new seed agrees on 46-96 % of the rows at a tenth, 84-100 % at a quarter,
99-100 % at a half; a model that ignores its inputs (trained on shuffled targets, or the mean)
on 29-42 % at a half, one without its most telling input on at most 53 %. So at 0.95 a half
accepts every new-seed retrain measured and refuses every broken one, with room on both sides
(tests/test_checked_swap_regressors.py). A weak model refitted on a fresh sample of a few
hundred rows moves more (89-100 %): swap_when's share is the knob for it. What a half lets
through: a version shifted by less than half a deviation on every row (the sentence's average
difference shows it). A row one version refuses and the other answers disagrees; a row both
refuse is left out. The difference of a row is the largest absolute difference of its class
probabilities (a classifier with ``predict_proba``, classes matched by label) or of its values
(a regressor).

A regressor's rule needs a scale: when the serving version's answers on the rows checked
take fewer than ``MIN_DISTINCT`` distinct values (the same row logged five times, and no
reference sample), their spread is 0 or a guess, and "within half of it" would call an honest
retrain 0 % alike and refuse it. Then the agreement is not judged (``Comparison.judged``
False, ``agreement`` None): the swap is not refused on it, and the note says why and how far
the values moved. No other scale is honest here: a fixed one is in the model's units, which
winserve does not know, and the new version's spread is what is being checked. A reference
sample gives the rows a scale (its rows come first), so a model with one is judged. A
multi-output regressor's answers (lists) are compared as before.

Everything here is a pure function of plain values (tests/test_checked_swap.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALWAYS = "always"
# a regressor's two values agree within this share of the serving version's standard
# deviation on the rows compared (issue 26: a tenth refused honest retrains; see the module
# docstring for the figures behind a half)
TOLERANCE = 0.5
# fewer distinct values of the serving version than this give no scale (see the docstring)
MIN_DISTINCT = 5
# how the page, the console and /health say it (``tolerance_words``)
TOLERANCE_WORDS = "half the standard deviation of version {old}'s values on these rows"


def parse_when(text: str) -> float | None:
    """``swap_when``'s threshold: None for "always", else the share after "agree>=" (the
    setting's converter, ``settings.to_swap_when``, checked and normalised it)."""
    from winserve.settings import to_swap_when

    normal = to_swap_when(text)
    return None if normal == ALWAYS else float(normal.removeprefix("agree>="))


def when_text(threshold: float | None) -> str:
    """The setting's normal form: "always" or "agree>=0.95"."""
    return ALWAYS if threshold is None else f"agree>={threshold:g}"


@dataclass(frozen=True)
class Answers:
    """One version's answers to the rows, in their order: a label (or value) per row, the
    class probabilities per row when asked and given, the classes they are of, and the rows
    it refused (their label is meaningless)."""

    labels: Sequence[Any]
    probabilities: Sequence[Sequence[float] | None] | None = None
    classes: Sequence[Any] = ()
    refused: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Comparison:
    """Two versions' answers side by side."""

    rows: int  # rows at least one version answered
    agreeing: int
    differences: tuple[float | None, ...]  # per row of the input (None: not comparable)
    disagreeing: tuple[int, ...]  # indexes of the rows that disagree
    measure: str  # "probabilities", "values" or "" (labels only)
    note: str = ""  # why the differences are not measured, when they are not
    tolerance: float | None = None  # a regressor's: values this close agree
    judged: bool = True  # False: too few distinct values to judge a regressor (note says)

    @property
    def agreement(self) -> float | None:
        """The share of rows answered alike (None: no row to compare, or not judged)."""
        return self.agreeing / self.rows if self.rows and self.judged else None

    @property
    def mean_difference(self) -> float | None:
        found = [d for d in self.differences if d is not None]
        return sum(found) / len(found) if found else None

    @property
    def max_difference(self) -> float | None:
        found = [d for d in self.differences if d is not None]
        return max(found) if found else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _spread(values: Sequence[Any]) -> float:
    """The population standard deviation of the numbers in ``values`` (0 without two)."""
    numbers = [n for n in (_number(v) for v in values) if n is not None and math.isfinite(n)]
    if len(numbers) < 2:
        return 0.0
    mean = sum(numbers) / len(numbers)
    return math.sqrt(sum((n - mean) ** 2 for n in numbers) / len(numbers))


def _alike(old: Any, new: Any, tolerance: float) -> bool:
    """Two answers alike: numbers within ``tolerance`` (0: equal), lists element by element,
    anything else equal."""
    a, b = _number(old), _number(new)
    if a is not None and b is not None:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= tolerance
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return len(old) == len(new) and all(
            _alike(x, y, tolerance) for x, y in zip(old, new, strict=True)
        )
    return bool(old == new)


def _class_order(old: Sequence[Any], new: Sequence[Any]) -> list[int] | None:
    """For each of the serving version's classes, its column in the new version's
    probabilities; None when the two have different classes."""
    old_keys, new_keys = [str(c) for c in old], [str(c) for c in new]
    if not old_keys or sorted(old_keys) != sorted(new_keys) or len(set(old_keys)) != len(old):
        return None
    where = {c: i for i, c in enumerate(new_keys)}
    return [where[c] for c in old_keys]


def _probability_gap(old: Sequence[float], new: Sequence[float], order: list[int]) -> float:
    return max(abs(float(o) - float(new[j])) for o, j in zip(old, order, strict=True))


def compare(old: Answers, new: Answers, *, regression: bool) -> Comparison:
    """``new`` against ``old`` (the serving version), row by row (see the module docstring)."""
    n = len(old.labels)
    if len(new.labels) != n:
        raise ValueError(f"{len(new.labels)} answers against {n}: the rows differ")
    tolerance, distinct = 0.0, 0
    if regression:
        answered = [v for i, v in enumerate(old.labels) if i not in old.refused]
        tolerance = TOLERANCE * _spread(answered)
        distinct = len(_distinct(answered))
    measure, note, order = "", "", None
    if old.probabilities is not None and new.probabilities is not None:
        order = _class_order(old.classes, new.classes)
        if order is not None:
            measure = "probabilities"
        else:
            note = (
                "the probabilities are not compared: the classes differ "
                f"({list(old.classes)} against {list(new.classes)})"
            )
    elif regression:
        measure = "values"
    rows = agreeing = 0
    differences: list[float | None] = []
    disagreeing: list[int] = []
    for i in range(n):
        old_refused, new_refused = i in old.refused, i in new.refused
        difference: float | None = None
        if old_refused and new_refused:
            differences.append(None)
            continue
        rows += 1
        if old_refused or new_refused:
            alike = False
        else:
            a, b = old.labels[i], new.labels[i]
            alike = _alike(a, b, tolerance)
            if measure == "probabilities" and order is not None:
                p, q = old.probabilities[i], new.probabilities[i]  # type: ignore[index]
                if p is not None and q is not None:
                    difference = _probability_gap(p, q, order)
            elif measure == "values":
                x, y = _number(a), _number(b)
                if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
                    difference = abs(x - y)
        differences.append(difference)
        if alike:
            agreeing += 1
        else:
            disagreeing.append(i)
    # distinct 0: no number at all (a multi-output regressor's lists), compared as before
    judged = not regression or not rows or not distinct
    judged = judged or (distinct >= MIN_DISTINCT and tolerance > 0)
    if not judged:
        note = _unjudged(distinct, rows, differences) + (f"; {note}" if note else "")
    return Comparison(
        rows,
        agreeing,
        tuple(differences),
        tuple(disagreeing),
        measure,
        note,
        tolerance if regression else None,
        judged,
    )


def _distinct(values: Sequence[Any]) -> set[float]:
    """The distinct finite numbers of ``values``."""
    return {n for n in (_number(v) for v in values) if n is not None and math.isfinite(n)}


def _unjudged(distinct: int, rows: int, differences: Sequence[float | None]) -> str:
    """Why a regressor's agreement is not judged, and how far its values moved."""
    found = [d for d in differences if d is not None]
    moved = (
        f"; the values differ by {sum(found) / len(found):.3g} on average, {max(found):.3g} at most"
        if found
        else ""
    )
    values = "value" if distinct == 1 else "values"
    return (
        f"a regressor's agreement cannot be judged on so few distinct rows: the serving "
        f"version's answers to the {rows:,} rows checked take {distinct} distinct {values} "
        f"(at least {MIN_DISTINCT} give a scale; a reference sample gives one){moved}"
    )


def tolerance_words(tolerance: float, old_version: int) -> str:
    """A regressor's rule, said with its value: "a value agrees within 12.5, half the standard
    deviation of version 1's values on these rows"."""
    return f"a value agrees within {tolerance:.3g}, " + TOLERANCE_WORDS.format(old=old_version)


def decide(comparison: Comparison, threshold: float | None) -> bool:
    """Whether the new version may serve: always without a threshold or without rows to
    compare (nothing says it is worse); else when its agreement reaches the threshold."""
    agreement = comparison.agreement
    if threshold is None or agreement is None:
        return True
    # a share like 0.95 from 1900/2000 must reach 0.95, not miss it by a rounding error
    return agreement + 1e-12 >= threshold


def percent(share: float) -> str:
    """98.2 % (one decimal; 100 % only when every row agreed)."""
    shown = f"{share * 100:.1f}"
    if share < 1 and shown == "100.0":
        shown = "99.9"
    return f"{shown} %"


REFUSED = "(refused)"  # a version's answer, in the CSV, to a row it refused


@dataclass(frozen=True)
class DisagreeingRows:
    """The rows the two versions answered differently, for the owner's CSV: each row's
    origin (``reference`` or ``log``), its inputs, both answers and their difference."""

    new_version: int
    old_version: int
    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def disagreeing_rows(
    columns: Mapping[str, Sequence[Any]],
    origins: Sequence[str],
    old: Answers,
    new: Answers,
    comparison: Comparison,
    *,
    new_version: int,
    old_version: int,
) -> DisagreeingRows:
    """``comparison``'s disagreeing rows with their inputs (``columns``, by name) and answers."""
    names = list(columns)
    header = (
        "origin",
        *names,
        f"version_{old_version}",
        f"version_{new_version}",
        "difference",
    )

    def said(answers: Answers, i: int) -> Any:
        return REFUSED if i in answers.refused else answers.labels[i]

    rows = tuple(
        (
            origins[i],
            *(columns[name][i] for name in names),
            said(old, i),
            said(new, i),
            comparison.differences[i],
        )
        for i in comparison.disagreeing
    )
    return DisagreeingRows(new_version, old_version, header, rows)

"""Why this answer, and what if (issue 25): Shapley values and what-if curves of one row, in
the user's own columns, against the model's reference sample (DESIGN 15).

Pure functions over a ``score`` callable (a frame of the user's columns in, one number per row
out), so they are tested without processes; the model host gives them its model::

    row (1 × columns) ──┐
    reference sample ───┼─► coalition rows (one frame) ─► score() per chunk ─► v(S) per coalition
                        │     each coalition S: the row's values in S, a background row's
                        │     elsewhere, for every background row (mean over them = v(S))
                        └─► Shapley value of column i = weighted mean of v(S ∪ i) − v(S)

- up to ``EXACT_MAX`` columns, every coalition is enumerated: exact Shapley values for the
  background used (contributions + baseline == output, to rounding);
- beyond, permutations sampled with a fixed seed (each with its reverse, which halves the
  variance for near-additive models); each permutation telescopes from v(∅) to v(all), so the
  sum is exact there too, and only how it is shared is estimated.

``baseline`` is v(∅), the mean score over the background rows; ``output`` is v(all), the
score of the row itself. Every explanation is held to ``max_rows`` model rows (the background
is subsampled, reproducibly, to fit), so one explanation cannot hog a replica.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Score = Callable[[pd.DataFrame], "np.ndarray[Any, Any]"]

EXACT_MAX = 10  # columns up to which every coalition is enumerated (2**10 coalitions)
# model rows one explanation may cost: one row of a 200-tree forest with 20 inputs (19,100
# rows) took 0.6-0.9 s (median) on the team's 2-core machine at load average 12, against
# 1.2-2.3 s with 50,000 (bench/explain.py; issue 25's target is 1 s)
MAX_ROWS = 20_000
CHUNK_ROWS = 10_000  # rows per model call
MIN_BACKGROUND = 10  # background rows kept at the least, even past the budget's share
PERMUTATION_BACKGROUND = 50  # background rows for permutation sampling
MIN_PERMUTATIONS = 4
SEED = 0
WHATIF_POINTS = 20  # quantiles a number column sweeps
WHATIF_CATEGORIES = 50  # values a category column sweeps, the most frequent first


@dataclass(frozen=True)
class Explanation:
    baseline: float
    output: float
    contributions: dict[str, float]
    method: str  # "exact" or "permutation"
    background_rows: int
    model_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "output": self.output,
            "contributions": self.contributions,
            "method": self.method,
            "background_rows": self.background_rows,
        }


def background_rows(
    reference: pd.DataFrame, coalitions: int, max_rows: int, *, cap: int | None = None
) -> pd.DataFrame:
    """The reference rows used as background: as many as ``max_rows`` allows for
    ``coalitions`` coalitions (at least ``MIN_BACKGROUND``), sampled with a fixed seed."""
    keep = max(MIN_BACKGROUND, max_rows // max(1, coalitions))
    if cap is not None:
        keep = min(keep, cap)
    if len(reference) <= keep:
        return reference.reset_index(drop=True)
    return reference.sample(n=keep, random_state=SEED).reset_index(drop=True)


def coalition_frame(row: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> pd.DataFrame:
    """One frame of ``len(masks) × len(background)`` rows: for coalition k (``masks[k]``, one
    bool per column), the row's value where True, each background row's elsewhere. Built
    column by column, so each column keeps its dtype (numbers stay numbers, categories text)."""
    n_background = len(background)
    columns: dict[str, Any] = {}
    for j, name in enumerate(background.columns):
        own = np.repeat(masks[:, j], n_background)
        base = np.tile(background[name].to_numpy(), len(masks))
        value = row[name].to_numpy()[0]
        if base.dtype.kind in "fiub" and isinstance(value, (int, float, np.number)):
            columns[name] = np.where(own, value, base.astype(np.float64))
        else:
            mixed = base.astype(object)
            mixed[own] = value
            columns[name] = mixed
    return pd.DataFrame(columns)


def coalition_values(
    row: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray, score: Score
) -> np.ndarray:
    """v(S) for each mask: the mean score over the background with the row's values in S."""
    n_background = len(background)
    values = np.empty(len(masks))
    per_call = max(1, CHUNK_ROWS // n_background)  # coalitions per model call
    for start in range(0, len(masks), per_call):
        chunk = masks[start : start + per_call]
        scored = np.asarray(score(coalition_frame(row, background, chunk)), dtype=np.float64)
        values[start : start + len(chunk)] = scored.reshape(len(chunk), n_background).mean(axis=1)
    return values


def exact(
    row: pd.DataFrame, reference: pd.DataFrame, score: Score, max_rows: int = MAX_ROWS
) -> Explanation:
    """Shapley values by enumerating all 2**d coalitions."""
    names = list(reference.columns)
    d = len(names)
    masks = np.array([[(k >> j) & 1 for j in range(d)] for k in range(2**d)], dtype=bool).reshape(
        2**d, d
    )
    background = background_rows(reference, len(masks), max_rows)
    values = coalition_values(row, background, masks, score)
    weights = [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)]
    phi = np.zeros(d)
    for k in range(2**d):
        size = bin(k).count("1")
        for j in range(d):
            if not (k >> j) & 1:
                # masks[k] is the coalition of k's bits: k | (1 << j) is k with column j
                phi[j] += weights[size] * (values[k | (1 << j)] - values[k])
    return _explained(names, phi, values[0], values[-1], "exact", background, len(masks))


def permutation(
    row: pd.DataFrame, reference: pd.DataFrame, score: Score, max_rows: int = MAX_ROWS
) -> Explanation:
    """Shapley values estimated from permutations (each with its reverse), fixed seed."""
    names = list(reference.columns)
    d = len(names)
    background = background_rows(reference, 0, max_rows, cap=PERMUTATION_BACKGROUND)
    pairs = max(MIN_PERMUTATIONS // 2, max_rows // (2 * d * len(background)))
    rng = np.random.default_rng(SEED)
    orders: list[np.ndarray] = []
    for _ in range(pairs):
        order = rng.permutation(d)
        orders += [order, order[::-1]]
    # coalitions in walk order: ∅ once, then after each added column of each permutation
    masks = [np.zeros(d, dtype=bool)]
    for order in orders:
        mask = np.zeros(d, dtype=bool)
        for j in order[:-1]:
            mask = mask.copy()
            mask[j] = True
            masks.append(mask)
    masks.append(np.ones(d, dtype=bool))  # all: shared by every permutation's last step
    values = coalition_values(row, background, np.array(masks), score)
    empty, full = values[0], values[-1]
    phi = np.zeros(d)
    at = 1
    for order in orders:
        previous = empty
        for step, j in enumerate(order):
            current = full if step == d - 1 else values[at]
            at += step < d - 1
            phi[j] += current - previous
            previous = current
    phi /= len(orders)
    return _explained(names, phi, empty, full, "permutation", background, len(masks))


def shapley(
    row: pd.DataFrame, reference: pd.DataFrame, score: Score, max_rows: int = MAX_ROWS
) -> Explanation:
    """Exact for up to ``EXACT_MAX`` columns, sampled beyond."""
    if len(reference.columns) <= EXACT_MAX:
        return exact(row, reference, score, max_rows)
    return permutation(row, reference, score, max_rows)


def _explained(
    names: Sequence[str],
    phi: np.ndarray,
    baseline: float,
    output: float,
    method: str,
    background: pd.DataFrame,
    coalitions: int,
) -> Explanation:
    return Explanation(
        baseline=float(baseline),
        output=float(output),
        contributions={name: float(value) for name, value in zip(names, phi, strict=True)},
        method=method,
        background_rows=len(background),
        model_rows=coalitions * len(background),
    )


def sweep_values(reference: pd.Series, kind: str) -> list[Any]:
    """What a column sweeps in a what-if curve: ~``WHATIF_POINTS`` quantiles of a number
    column's reference values (distinct, ascending), or each value a category column takes
    there, the most frequent first (at most ``WHATIF_CATEGORIES``)."""
    values = reference.dropna()
    if kind == "number" or (kind == "any" and pd.api.types.is_numeric_dtype(values)):
        numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
        if not len(numbers):
            return []
        grid = np.quantile(numbers, np.linspace(0.0, 1.0, WHATIF_POINTS))
        return [float(v) for v in np.unique(grid)]
    counts = values.value_counts(sort=True)
    return [_plain(v) for v in counts.index[:WHATIF_CATEGORIES]]


def sweep_frame(row: pd.DataFrame, column: str, values: Sequence[Any]) -> pd.DataFrame:
    """``row`` repeated once per value, ``column`` set to each value in turn."""
    frame = pd.concat([row] * len(values), ignore_index=True) if values else row.iloc[:0]
    if values:
        frame[column] = pd.Series(list(values), dtype=object if _any_text(values) else None)
    return frame


def _any_text(values: Sequence[Any]) -> bool:
    return any(not isinstance(v, (int, float, np.number)) for v in values)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value

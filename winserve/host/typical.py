"""The reference sample's typical row (issue 25): where the page's form starts.

::

    churn.reference.csv ─► Reference.frame (winserve.host.reference, in the model host)
                        ─► typical_row: a number column's median, any other column's most
                           frequent value (missing values left out; a column of only missing
                           values has none)
                        ─► ModelInfo.extra["typical"] {column: plain value}
                        ─► card.form_fields: a field's starting value, after the card's example
                        ─► usual_ranges: a number column's 5th and 95th percentiles
                        ─► ModelInfo.extra["ranges"] {column: [low, high]}: the field's hint

Plain values only (float, int, bool, str): they cross the process boundary in the model's
description and are shown in the form as text.
"""

from __future__ import annotations

from typing import Any


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (JSON and pickle friendly)."""
    return value.item() if hasattr(value, "item") else value


def typical_row(frame: Any, features: list[dict[str, Any]]) -> dict[str, Any]:
    """Each column's typical value in ``frame`` (a pandas DataFrame of the model's input
    columns): the median of a number column, the most frequent value of any other (on a tie,
    the one that comes first in the sample, so the answer does not depend on hashing)."""
    typical: dict[str, Any] = {}
    for feature in features:
        name = str(feature["name"])
        if name not in frame.columns:
            continue
        column = frame[name].dropna()
        if column.empty:
            continue
        if feature.get("kind") == "number":
            typical[name] = float(column.astype("float64").median())
            continue
        counts = column.value_counts(sort=False)
        most = counts.max()
        first = next(v for v in column.tolist() if counts[v] == most)
        typical[name] = _plain(first)
    return typical


def usual_ranges(frame: Any, features: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each number column's usual range in ``frame``: its 5th and 95th percentiles (the
    form's hint "usually between …"; never a limit: the model takes any number)."""
    ranges: dict[str, list[float]] = {}
    for feature in features:
        name = str(feature["name"])
        if feature.get("kind") != "number" or name not in frame.columns:
            continue
        column = frame[name].dropna().astype("float64")
        if len(column) >= 2:
            ranges[name] = [float(column.quantile(0.05)), float(column.quantile(0.95))]
    return ranges

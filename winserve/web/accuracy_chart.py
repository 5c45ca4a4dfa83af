"""The accuracy section's chart (issue 26): per version of the model, a line through its
weeks, drawn as the monitor's other charts are (web/monitor_charts.py: the same frame,
lines, legend and colours; inline SVG drawn on the server, no script).

::

    accuracy.Score per (week, version) ─► chart ─► a line per version: accuracy (0-100 %)
                                                    for a classifier, MAE for a regressor

The table beside it holds every figure (the chart's text alternative); a week without a
score of a version is a gap in its line, a week alone a dot.
"""

from __future__ import annotations

from collections.abc import Sequence

from winserve.predlog.accuracy import ALL_WEEKS, Score
from winserve.web.charts import _svg, compact
from winserve.web.monitor_charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    _frame,
    _legend,
    _lines,
    class_colours,
)

WEEK = 7 * 86_400


def chart(scores: Sequence[Score], regressor: bool, title: str) -> str:
    """The SVG of ``scores`` by week, one line per version; "" without a weekly score."""
    weekly = [s for s in scores if s.week != ALL_WEEKS and s.start]
    starts = sorted({s.start for s in weekly})
    if not starts:
        return ""
    versions = list(dict.fromkeys(s.version for s in weekly))
    colours = class_colours(versions)

    def value(s: Score) -> float | None:
        return s.mae if regressor else s.accuracy

    most = max((value(s) or 0.0 for s in weekly), default=0.0) if regressor else 1.0
    most = most or 1.0
    plot_h, y_off = HEIGHT - TOP - BOTTOM, HEIGHT - BOTTOM
    plot_w, n = WIDTH - LEFT - RIGHT, len(starts)
    xs = {start: LEFT + (i + 0.5) * plot_w / n for i, start in enumerate(starts)}
    top = f"MAE {compact(most)}" if regressor else "100 %"
    body = _frame(starts, WEEK, top, "0" if regressor else "0 %")
    for version in versions:
        by_week = {s.start: value(s) for s in weekly if s.version == version}
        points: list[tuple[float, float | None]] = []
        for start in starts:
            found = by_week.get(start)
            points.append((xs[start], None if found is None else y_off - found / most * plot_h))
        body += _lines(points, colours[version], False)
    body += _legend([(v, colours[v]) for v in versions], HEIGHT - 8)
    return _svg(WIDTH, HEIGHT, title, body, "monitor")

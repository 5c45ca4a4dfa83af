"""Charts drawn by winserve itself (issue 25): pure functions from numbers to SVG strings.

::

    [(label, value), ...]          ─► contribution_chart ─► sorted horizontal bars around zero
    column, xs, ys, current        ─► number_curve       ─► a line over the quantiles, a dot at
                                                            the row's value
    column, values, ys, current    ─► category_bars      ─► one bar per value, the row's marked

No library and no CDN: the page works with no internet. Every text is escaped (a column name
is whatever the data scientist called it), every chart has a ``<title>`` and an ``aria-label``;
the numbers behind each chart are in a table the page puts beside it. Type is large enough
for a projector, and the colours are the page's own (contrast checked by axe in the tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape

FONT = 18  # px in the chart's own units; the SVG scales to the page's width
ROW = 34  # height of one bar's row
MAX_LABEL = 34  # characters of a label drawn in a chart; the table has them whole


def number(value: float) -> str:
    """A number as people read it: thousands separated, no exponent between 0.0001 and 10**15,
    four significant digits below 100 and two decimals above."""
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if value == int(value) and size < 1e15:
        return f"{int(value):,}"
    if size >= 1e15 or size < 1e-4:
        return f"{value:.4g}"
    if size >= 100:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def compact(value: float) -> str:
    """A number short enough for a chart's tick or bar end: ``45,452``, ``3.142``, ``1.2e+09``
    (the table behind the chart has it in full)."""
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 1e7:
        return f"{value:.3g}"
    if size >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def signed(value: float, unit: str) -> str:
    """A contribution with its sign: ``+12.3 %`` (percentage points) or ``−0.25``."""
    text = f"{abs(value):.1f} %" if unit == "%" else number(abs(value))
    if text.strip("0.% ,") == "":
        return text  # rounds to zero: no sign
    return ("+" if value > 0 else "\u2212") + text


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "\u2026"


def _svg(width: int, height: int, title: str, body: list[str], css: str) -> str:
    label = escape(title, quote=True)
    return (
        f'<svg class="chart {css}" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{label}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{label}</title>" + "".join(body) + "</svg>"
    )


def sorted_contributions(items: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Largest effect first (by size, either sign); ties keep the columns' order."""
    return sorted(items, key=lambda item: -abs(item[1]))


def contribution_chart(items: Sequence[tuple[str, float]], unit: str, title: str) -> str:
    """Horizontal bars, largest first, right of the zero line for what raised the answer and
    left for what lowered it; each labelled ``income 52,000`` and ``+12.0 %``."""
    bars = sorted_contributions(items)
    width, label_w, value_w = 900, 330, 110
    plot_x, plot_w = label_w, width - label_w - value_w
    height = ROW * max(1, len(bars)) + 8
    largest = max((abs(v) for _, v in bars), default=0.0) or 1.0
    negatives = any(v < 0 for _, v in bars)
    positives = any(v > 0 for _, v in bars)
    # zero at the left when nothing lowered it, at the right when nothing raised it
    zero = plot_x + (plot_w / 2 if negatives and positives else (plot_w if negatives else 0))
    scale = (plot_w / 2 if negatives and positives else plot_w) / largest
    body = [
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height}" class="axis"></line>',
    ]
    for i, (label, value) in enumerate(bars):
        y = i * ROW + 4
        length = abs(value) * scale
        x = zero if value >= 0 else zero - length
        css = "up" if value >= 0 else "down"
        text_y = y + ROW / 2 + FONT / 3
        body.append(
            f'<text x="{label_w - 10}" y="{text_y:.1f}" text-anchor="end" class="label">'
            f"{escape(_short(label))}</text>"
        )
        body.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{max(length, 1):.1f}" height="{ROW - 8}" '
            f'class="bar {css}"></rect>'
        )
        tx, anchor = (x + length + 6, "start") if value >= 0 else (x - 6, "end")
        if value < 0 and tx < label_w + 60:  # no room left of the bar: write it right of zero
            tx, anchor = zero + 6, "start"
        body.append(
            f'<text x="{tx:.1f}" y="{text_y:.1f}" text-anchor="{anchor}" class="value">'
            f"{escape(signed(value, unit))}</text>"
        )
    return _svg(width, height, title, body, "contributions")


def _scale(lo: float, hi: float, start: float, length: float) -> tuple[float, float]:
    """(offset, factor) mapping [lo, hi] onto [start, start + length]."""
    span = hi - lo
    if span <= 0:
        return start + length / 2, 0.0
    return start - lo * length / span, length / span


def number_curve(
    column: str,
    xs: Sequence[float],
    ys: Sequence[float],
    current: float | None,
    unit: str,
    title: str,
) -> str:
    """The answer as ``column`` sweeps ``xs`` (its quantiles): a line, the row's own value
    marked with a dot and a dashed line."""
    width, height = 440, 260
    left, right, top, bottom = 84, 20, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [(float(x), float(y)) for x, y in zip(xs, ys, strict=False)]
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if y_hi == y_lo:  # a flat curve drawn in the middle, not on an edge
        y_lo, y_hi = y_lo - 1, y_hi + 1
    x0, xf = _scale(x_lo, x_hi, left, plot_w)
    y_off = top + plot_h

    def px(x: float) -> float:
        return x0 + x * xf if xf else left + plot_w / 2

    def py(y: float) -> float:
        return y_off - (y - y_lo) * plot_h / (y_hi - y_lo)

    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    fmt = (lambda v: f"{v:.0f} %") if unit == "%" else compact
    body = [
        f'<line x1="{left}" y1="{y_off}" x2="{left + plot_w}" y2="{y_off}" class="axis"></line>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y_off}" class="axis"></line>',
        f'<text x="{left - 6}" y="{top + FONT / 2:.1f}" text-anchor="end" class="tick">'
        f"{escape(fmt(y_hi))}</text>",
        f'<text x="{left - 6}" y="{y_off:.1f}" text-anchor="end" class="tick">'
        f"{escape(fmt(y_lo))}</text>",
        f'<text x="{left}" y="{y_off + FONT + 4}" class="tick">{escape(number(x_lo))}</text>',
        f'<text x="{left + plot_w}" y="{y_off + FONT + 4}" text-anchor="end" class="tick">'
        f"{escape(number(x_hi))}</text>",
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'class="label">{escape(_short(column))}</text>',
        f'<polyline points="{path}" class="curve"></polyline>',
    ]
    if current is not None and math.isfinite(current) and points:
        at = min(max(current, x_lo), x_hi)
        here = _interpolate(points, at)
        body.append(
            f'<line x1="{px(at):.1f}" y1="{top}" x2="{px(at):.1f}" y2="{y_off}" class="now"></line>'
        )
        body.append(f'<circle cx="{px(at):.1f}" cy="{py(here):.1f}" r="7" class="dot"></circle>')
    return _svg(width, height, title, body, "whatif")


def _interpolate(points: list[tuple[float, float]], x: float) -> float:
    """The curve's height at ``x`` (straight lines between the swept values)."""
    ordered = sorted(points)
    for (xa, ya), (xb, yb) in itertools.pairwise(ordered):
        if xa <= x <= xb:
            return ya if xb == xa else ya + (yb - ya) * (x - xa) / (xb - xa)
    return ordered[0][1] if x <= ordered[0][0] else ordered[-1][1]


def category_bars(
    column: str,
    values: Sequence[str],
    ys: Sequence[float],
    current: str | None,
    unit: str,
    title: str,
) -> str:
    """The answer for each value of a category column: one bar each, the row's own value
    drawn darker and named "(now)"."""
    width, label_w, value_w = 440, 160, 92
    plot_w = width - label_w - value_w
    height = ROW * max(1, len(values)) + 8
    lo = min(0.0, *ys) if ys else 0.0
    hi = max(0.0, *ys) if ys else 1.0
    span = (hi - lo) or 1.0
    zero = label_w + (0 - lo) / span * plot_w
    fmt = (lambda v: f"{v:.1f} %") if unit == "%" else compact
    body = [f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height}" class="axis"></line>']
    for i, (value, y) in enumerate(zip(values, ys, strict=False)):
        top = i * ROW + 4
        length = abs(y) / span * plot_w
        x = zero if y >= 0 else zero - length
        now = value == current
        text_y = top + ROW / 2 + FONT / 3
        name = _short(value) + (" (now)" if now else "")
        body.append(
            f'<text x="{label_w - 8}" y="{text_y:.1f}" text-anchor="end" '
            f'class="label{" now-label" if now else ""}">{escape(name)}</text>'
        )
        body.append(
            f'<rect x="{x:.1f}" y="{top + 4}" width="{max(length, 1):.1f}" height="{ROW - 8}" '
            f'class="bar{" current" if now else ""}"></rect>'
        )
        body.append(
            f'<text x="{label_w + plot_w + 6}" y="{text_y:.1f}" class="value">'
            f"{escape(fmt(y))}</text>"
        )
    return _svg(width, height, title, body, "whatif")

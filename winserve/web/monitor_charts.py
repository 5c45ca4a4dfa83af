"""The monitor page's charts (issue 26): pure functions from the log's figures to inline SVG,
in the style of the explanations' charts (web/charts.py: its frame, type and number formats).

::

    summary.Bucket per hour/day       ─► requests_chart  ─► bars: requests, the errors darker
                                      ─► latency_chart   ─► two lines: p50, p95 (ms)
    summary.Predictions per hour/day  ─► shares_chart    ─► stacked bars: each class's share
                                      ─► values_chart    ─► a bar p5-p95 and a dot at the median
    drift.ColumnDrift                 ─► histogram_pair  ─► per bin, the reference's share and
                                                            the period's, side by side
    events.ModelEvent                 ─► timeline        ─► numbered marks along the period

Drawn on the server, no script, no internet. Each chart is a picture with a title and an
``aria-label`` saying what it shows; the page puts its numbers beside it in a table (or, for
the timeline, a numbered list), the text alternative a screen reader and a spreadsheet read.
Colours are SVG presentation attributes where the page's stylesheet has no class for them:
the page's Content-Security-Policy forbids ``style`` attributes, not these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from winserve.predlog.drift import ColumnDrift
from winserve.predlog.events import ModelEvent
from winserve.predlog.summary import HOUR, Bucket, Predictions
from winserve.web.charts import FONT, ROW, _short, _svg, compact

WIDTH, HEIGHT = 900, 280
LEFT, RIGHT, TOP, BOTTOM = 80, 16, 16, 64
MAX_TICKS = 12  # bucket labels written under a chart; the table has every one
# one colour per class, distinct for the common kinds of colour blindness (Okabe-Ito), then
# greys; "other" is the last grey
PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#000000",
    "#6b8e23",
    "#8b4513",
    "#4b0082",
    "#708090",
    "#a9a9a9",
)
BAD = "#b42318"  # the page's --bad: errors, failed loads
KIND_COLOURS = {
    "loaded": "#1a7f37",
    "restarted": "#9a6700",
    "load_failed": BAD,
    "swap_refused": BAD,
    "unloaded": "#57606a",
    "job": "#0b5cad",
}


def bucket_label(start: float, size: int) -> str:
    """``14:00`` for an hour, ``Mon 7 Dec`` for a day or a week (UTC, as the page says)."""
    moment = datetime.fromtimestamp(start, UTC)
    # no %-d: Windows' strftime has no flag for a day without its leading zero
    return f"{moment:%H:%M}" if size <= HOUR else f"{moment:%a} {moment.day} {moment:%b}"


def long_label(start: float, size: int) -> str:
    """A bucket as the tables name it: ``Mon 7 Dec 14:00`` or ``Mon 7 Dec``."""
    moment = datetime.fromtimestamp(start, UTC)
    day = f"{moment:%a} {moment.day} {moment:%b}"
    return f"{day} {moment:%H:%M}" if size <= HOUR else day


def _frame(starts: Sequence[float], size: int, top_value: str, bottom_value: str) -> list[str]:
    """The axes, the value ticks at the top and bottom, and the buckets' labels."""
    plot_w, y_off = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM
    body = [
        f'<line x1="{LEFT}" y1="{y_off}" x2="{WIDTH - RIGHT}" y2="{y_off}" class="axis"></line>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y_off}" class="axis"></line>',
        f'<text x="{LEFT - 6}" y="{TOP + FONT / 2:.1f}" text-anchor="end" class="tick">'
        f"{escape(top_value)}</text>",
        f'<text x="{LEFT - 6}" y="{y_off:.1f}" text-anchor="end" class="tick">'
        f"{escape(bottom_value)}</text>",
    ]
    n = max(len(starts), 1)
    step = max(1, -(-n // MAX_TICKS))
    for i in range(0, len(starts), step):
        x = LEFT + (i + 0.5) * plot_w / n
        body.append(
            f'<text x="{x:.1f}" y="{y_off + FONT + 6}" text-anchor="middle" class="tick">'
            f"{escape(bucket_label(starts[i], size))}</text>"
        )
    return body


def _slot(i: int, n: int) -> tuple[float, float]:
    """(x, width) of bucket ``i`` of ``n``: a bar with a gap either side."""
    width = (WIDTH - LEFT - RIGHT) / max(n, 1)
    return LEFT + i * width + width * 0.12, width * 0.76


def _legend(items: Sequence[tuple[str, str]], y: float) -> list[str]:
    """Swatches and names in a row under the chart."""
    body, x = [], float(LEFT)
    for name, colour in items:
        shown = _short(name)
        body.append(
            f'<rect x="{x:.1f}" y="{y - 13:.1f}" width="14" height="14" fill="{colour}"></rect>'
        )
        body.append(f'<text x="{x + 20:.1f}" y="{y:.1f}" class="tick">{escape(shown)}</text>')
        x += 20 + 9.5 * len(shown) + 24
    return body


def requests_chart(buckets: Sequence[Bucket], size: int, title: str) -> str:
    """One bar per bucket, as tall as its requests; the errors' part drawn darker."""
    most = max((b.requests for b in buckets), default=0) or 1
    plot_h, y_off = HEIGHT - TOP - BOTTOM, HEIGHT - BOTTOM
    body = _frame([b.start for b in buckets], size, compact(most), "0")
    for i, b in enumerate(buckets):
        if not b.requests:
            continue
        x, w = _slot(i, len(buckets))
        height = b.requests / most * plot_h
        body.append(
            f'<rect x="{x:.1f}" y="{y_off - height:.1f}" width="{w:.1f}" '
            f'height="{max(height, 1):.1f}" class="bar"></rect>'
        )
        if b.errors:
            bad = b.errors / most * plot_h
            body.append(
                f'<rect x="{x:.1f}" y="{y_off - bad:.1f}" width="{w:.1f}" '
                f'height="{max(bad, 1):.1f}" fill="{BAD}"></rect>'
            )
    body += _legend([("requests", "#9fb8d6"), ("errors", BAD)], HEIGHT - 8)
    return _svg(WIDTH, HEIGHT, title, body, "monitor")


def _lines(points: Sequence[tuple[float, float | None]], colour: str, dashed: bool) -> list[str]:
    """A line through the points that have a value; a gap where one has none, a dot for a
    point alone."""
    body: list[str] = []
    run: list[tuple[float, float]] = []
    dash = ' stroke-dasharray="8 5"' if dashed else ""
    for x, y in [*points, (0.0, None)]:
        if y is not None:
            run.append((x, y))
            continue
        if len(run) == 1:
            body.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="5" fill="{colour}">')
            body[-1] += "</circle>"
        elif run:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="3"{dash}></polyline>'
            )
        run = []
    return body


def latency_chart(buckets: Sequence[Bucket], size: int, title: str) -> str:
    """The median and the 95th percentile of the latency per bucket, in milliseconds."""
    most = max((b.p95_ms or 0.0 for b in buckets), default=0.0) or 1.0
    plot_h, y_off = HEIGHT - TOP - BOTTOM, HEIGHT - BOTTOM
    plot_w, n = WIDTH - LEFT - RIGHT, max(len(buckets), 1)

    def y(value: float | None) -> float | None:
        return None if value is None else y_off - value / most * plot_h

    xs = [LEFT + (i + 0.5) * plot_w / n for i in range(len(buckets))]
    body = _frame([b.start for b in buckets], size, f"{compact(most)} ms", "0 ms")
    body += _lines([(x, y(b.p50_ms)) for x, b in zip(xs, buckets, strict=True)], "#0b5cad", False)
    body += _lines([(x, y(b.p95_ms)) for x, b in zip(xs, buckets, strict=True)], BAD, True)
    body += _legend([("median (p50)", "#0b5cad"), ("95th percentile (p95)", BAD)], HEIGHT - 8)
    return _svg(WIDTH, HEIGHT, title, body, "monitor")


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """A colour per class, in the order given ("other" always the last grey)."""
    colours = {c: PALETTE[i % (len(PALETTE) - 1)] for i, c in enumerate(classes)}
    if "other" in colours:
        colours["other"] = PALETTE[-1]
    return colours


def shares_chart(
    predictions: Sequence[Predictions], classes: Sequence[str], size: int, title: str
) -> str:
    """One bar per bucket, split by the share of each class among its predictions."""
    colours = class_colours(classes)
    plot_h, y_off = HEIGHT - TOP - BOTTOM, HEIGHT - BOTTOM
    body = _frame([p.start for p in predictions], size, "100 %", "0 %")
    for i, p in enumerate(predictions):
        x, w = _slot(i, len(predictions))
        bottom = float(y_off)
        for name, share in p.shares:
            if share <= 0:
                continue
            height = share * plot_h
            body.append(
                f'<rect x="{x:.1f}" y="{bottom - height:.1f}" width="{w:.1f}" '
                f'height="{height:.1f}" fill="{colours[name]}"></rect>'
            )
            bottom -= height
    body += _legend([(c, colours[c]) for c in classes], HEIGHT - 8)
    return _svg(WIDTH, HEIGHT, title, body, "monitor")


def values_chart(predictions: Sequence[Predictions], size: int, title: str) -> str:
    """A regressor's answers per bucket: a bar from the 5th to the 95th percentile, a dot at
    the median."""
    present = [p for p in predictions if p.median is not None]
    lo = min((p.p5 for p in present if p.p5 is not None), default=0.0)
    hi = max((p.p95 for p in present if p.p95 is not None), default=1.0)
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    plot_h, y_off = HEIGHT - TOP - BOTTOM, HEIGHT - BOTTOM

    def y(value: float) -> float:
        return y_off - (value - lo) / (hi - lo) * plot_h

    body = _frame([p.start for p in predictions], size, compact(hi), compact(lo))
    n = max(len(predictions), 1)
    for i, p in enumerate(predictions):
        if p.median is None or p.p5 is None or p.p95 is None:
            continue
        x = LEFT + (i + 0.5) * (WIDTH - LEFT - RIGHT) / n
        body.append(
            f'<line x1="{x:.1f}" y1="{y(p.p5):.1f}" x2="{x:.1f}" y2="{y(p.p95):.1f}" '
            f'stroke="#9fb8d6" stroke-width="10"></line>'
        )
        body.append(f'<circle cx="{x:.1f}" cy="{y(p.median):.1f}" r="6" fill="#0b5cad"></circle>')
    body += _legend([("5th to 95th percentile", "#9fb8d6"), ("median", "#0b5cad")], HEIGHT - 8)
    return _svg(WIDTH, HEIGHT, title, body, "monitor")


def histogram_pair(column: ColumnDrift, title: str) -> str:
    """Per bin, the reference sample's share and the period's, two bars side by side."""
    width, label_w, value_w = 900, 300, 150
    plot_w = width - label_w - value_w
    top = 34
    height = top + ROW * max(1, len(column.bins)) + 8
    most = max((*column.expected, *column.actual), default=0.0) or 1.0
    body = _legend([("reference sample", "#9fb8d6"), ("this period", "#0b5cad")], 20)
    for i, (name, ref, now) in enumerate(
        zip(column.bins, column.expected, column.actual, strict=True)
    ):
        y = top + i * ROW
        text_y = y + ROW / 2 + FONT / 3
        half = (ROW - 8) / 2
        body.append(
            f'<text x="{label_w - 10}" y="{text_y:.1f}" text-anchor="end" class="label">'
            f"{escape(_short(name))}</text>"
        )
        for j, (share, colour) in enumerate(((ref, "#9fb8d6"), (now, "#0b5cad"))):
            body.append(
                f'<rect x="{label_w}" y="{y + 4 + j * half:.1f}" '
                f'width="{max(share / most * plot_w, 1):.1f}" height="{half:.1f}" '
                f'fill="{colour}"></rect>'
            )
        body.append(
            f'<text x="{label_w + plot_w + 8}" y="{text_y:.1f}" class="tick">'
            f"{ref * 100:.0f} % → {now * 100:.0f} %</text>"
        )
    return _svg(width, height, title, body, "monitor")


def timeline(events: Sequence[ModelEvent], since: float, until: float, title: str) -> str:
    """The period as a line, each event a numbered mark at its time (the numbers of the
    list beside it), coloured by its kind."""
    height, y = 110, 44
    span = (until - since) or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    body = [
        f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" class="axis"></line>',
        f'<text x="{LEFT}" y="{y + 46}" class="tick">{escape(long_label(since, HOUR))}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{y + 46}" text-anchor="end" class="tick">'
        f"{escape(long_label(until, HOUR))}</text>",
    ]
    for number, event in enumerate(events, 1):
        x = LEFT + min(max((event.time - since) / span, 0.0), 1.0) * plot_w
        colour = KIND_COLOURS.get(event.kind, "#57606a")
        body.append(f'<circle cx="{x:.1f}" cy="{y}" r="8" fill="{colour}"></circle>')
        lift = 14 if number % 2 else -26  # neighbours alternate above and below the line
        body.append(
            f'<text x="{x:.1f}" y="{y - 14 if lift > 0 else y + 30}" text-anchor="middle" '
            f'class="tick">{number}</text>'
        )
    return _svg(WIDTH, height, title, body, "monitor timeline")

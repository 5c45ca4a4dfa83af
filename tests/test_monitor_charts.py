"""The monitor page's charts (issue 26, web/monitor_charts.py): pure functions from figures to
SVG, read back with an XML parser: one mark per bucket, row or event that has one, nothing
for an empty bucket, every text escaped, a title and an aria-label on each; and the page's
sentence (web/monitor_view.py) in its four cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import jobs_client
from tests.log_entries import MONDAY
from winserve.model_info import ModelSpec
from winserve.predlog.drift import column_drift
from winserve.predlog.events import ModelEvent
from winserve.predlog.summary import DAY, HOUR, Bucket, Predictions, Summary
from winserve.web import monitor_charts as charts
from winserve.web.monitor_view import Monitor

pytestmark = pytest.mark.timeout(30)

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str, title: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label") == title
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text == title  # type: ignore[union-attr]
    return root


def marks(root: ET.Element, tag: str, colour: str | None = None) -> list[ET.Element]:
    found = root.iter(f"{SVG}{tag}")
    return [e for e in found if colour is None or e.get("fill") == colour]


def test_requests_bars_one_per_busy_bucket_errors_darker() -> None:
    buckets = [
        Bucket(MONDAY, 10, 2, 1.0, 3.0),
        Bucket(MONDAY + HOUR),  # nothing: no bar
        Bucket(MONDAY + 2 * HOUR, 4, 0, 2.0, 2.5),
    ]
    root = parsed(charts.requests_chart(buckets, HOUR, "Requests"), "Requests")
    bars = [r for r in marks(root, "rect") if r.get("class") == "bar"]
    assert len(bars) == 2
    assert float(bars[0].get("height", 0)) > 2 * float(bars[1].get("height", 0))  # 10 vs 4
    errors = [r for r in marks(root, "rect", charts.BAD) if r.get("width") != "14"]
    assert len(errors) == 1  # the first bucket's 2 errors (not the legend's 14-wide swatch)
    ticks = [t.text for t in root.iter(f"{SVG}text")]
    assert "00:00" in ticks and "02:00" in ticks


def test_latency_lines_break_where_a_bucket_has_none() -> None:
    buckets = [
        Bucket(MONDAY, 1, 0, 1.0, 2.0),
        Bucket(MONDAY + DAY, 1, 0, 1.5, 3.0),
        Bucket(MONDAY + 2 * DAY),
        Bucket(MONDAY + 3 * DAY, 1, 0, 1.0, 4.0),  # alone after the gap: a dot
    ]
    root = parsed(charts.latency_chart(buckets, DAY, "Latency"), "Latency")
    assert len(marks(root, "polyline")) == 2  # p50 and p95 over the first two days
    assert len(marks(root, "circle")) == 2  # each line's lone point on the fourth day
    assert "Mon 7 Dec" in [t.text for t in root.iter(f"{SVG}text")]


def test_class_shares_stack_and_regressor_percentiles_draw_a_bar_and_a_dot() -> None:
    predictions = [
        Predictions(MONDAY, 4, (("yes", 0.75), ("no", 0.25))),
        Predictions(MONDAY + HOUR, 0),
    ]
    root = parsed(charts.shares_chart(predictions, ("yes", "no"), HOUR, "Shares"), "Shares")
    colours = charts.class_colours(("yes", "no"))
    stacked = [r for r in marks(root, "rect") if float(r.get("height", 0)) > 14]
    assert [r.get("fill") for r in stacked] == [colours["yes"], colours["no"]]
    assert float(stacked[0].get("height", 0)) == pytest.approx(
        3 * float(stacked[1].get("height", 0)), rel=1e-2
    )
    values = [
        Predictions(MONDAY, 10, (), 1.0, 5.0, 9.0),
        Predictions(MONDAY + HOUR, 0),
    ]
    root = parsed(charts.values_chart(values, HOUR, "Values"), "Values")
    assert len(marks(root, "line")) == 2 + 1  # the two axes, one bucket's p5-p95 bar
    (dot,) = [c for c in marks(root, "circle")]
    (bar,) = [line for line in marks(root, "line") if line.get("stroke") == "#9fb8d6"]
    y5, y95, y50 = float(bar.get("y1", 0)), float(bar.get("y2", 0)), float(dot.get("cy", 0))
    assert y95 < y50 < y5 and y50 == pytest.approx((y5 + y95) / 2)  # the median midway


def test_histograms_side_by_side_and_names_escaped() -> None:
    column = column_drift("<b>plan</b>", False, ["a", "a", "b"], ["b", "b", "b", "c"])
    title = "the <b>plan</b> histogram"
    svg = charts.histogram_pair(column, title)
    assert "<b>" not in svg
    root = parsed(svg, title)
    bars = [r for r in marks(root, "rect") if float(r.get("y", 0)) > 30]
    assert len(bars) == 2 * len(column.bins)  # reference and period, per bin
    shown = [t.text for t in root.iter(f"{SVG}text")]
    assert "67 % → 0 %" in shown and "33 % → 75 %" in shown  # a, then b


def test_the_timeline_numbers_its_events_in_order() -> None:
    events = [
        ModelEvent(MONDAY + 100, "loaded", 1, "m.joblib"),
        ModelEvent(MONDAY + 50_000, "restarted", None, "replica 0: exit code -9"),
        ModelEvent(MONDAY + 90_000, "load_failed", None, "<not a model>"),
    ]
    svg = charts.timeline(events, MONDAY, MONDAY + DAY * 2, "Timeline")
    root = parsed(svg, "Timeline")
    dots = marks(root, "circle")
    assert [d.get("fill") for d in dots] == [
        charts.KIND_COLOURS[k] for k in ("loaded", "restarted", "load_failed")
    ]
    xs = [float(d.get("cx", 0)) for d in dots]
    assert xs == sorted(xs) and xs[0] < xs[1] < xs[2]
    assert [t.text for t in root.iter(f"{SVG}text")][2:] == ["1", "2", "3"]
    assert [e.words for e in events] == ["version 1 loaded", "replica restarted", "load failed"]


def monitor(**fields: object) -> Monitor:
    since = datetime.fromtimestamp(MONDAY, UTC)
    until = datetime.fromtimestamp(MONDAY + 7 * DAY, UTC)
    base: dict[str, object] = {
        "model": "m",
        "since": since,
        "until": until,
        "logged_rows": 0,
        "reference": None,
        "hint": "",
        "log_off": False,
        "columns": (),
    }
    return Monitor(**{**base, **fields})  # type: ignore[arg-type]


def test_the_sentence_on_top() -> None:
    assert monitor().summary == "No requests logged since Mon 7 Dec 00:00 UTC."
    assert monitor(log_off=True).summary == ""
    activity = Summary(DAY, (Bucket(MONDAY, 12),), (), True, (), (), 12, 1.0, 2.0)
    assert monitor(activity=activity, ongoing=False).summary == (
        "12 requests from Mon 7 Dec 00:00 to Mon 14 Dec 00:00 UTC; no reference sample to "
        "compare their inputs with."
    )
    up = column_drift("income", True, [float(i) for i in range(100)], [80.0 + i for i in range(50)])
    plan = column_drift("plan", False, ["a"] * 50 + ["b"] * 50, ["c"] * 40)
    calm = column_drift("age", True, [float(i) for i in range(100)], [float(i) for i in range(100)])
    said = monitor(logged_rows=50, columns=(up, plan, calm), activity=activity).summary
    assert said == "2 of 3 inputs have drifted since Mon 7 Dec 00:00 UTC: income ↑, plan."
    said = monitor(logged_rows=50, columns=(calm,), activity=activity).summary
    assert said == "No input has drifted since Mon 7 Dec 00:00 UTC."


def test_a_long_timeline_keeps_its_list_folded(iris_forest: Path) -> None:
    """The page rendered (Flask's test app, the model in this process) with 25 events: the
    numbered list sits in a closed <details>, its 25 items numbered as the marks are."""
    from flask import render_template

    client = jobs_client(ModelSpec(str(iris_forest)))
    many = tuple(
        ModelEvent(MONDAY + i * 60, "restarted", None, f"replica 0: {i}") for i in range(25)
    )
    with client.application.test_request_context("/monitor"):
        client.application.preprocess_request()
        page = render_template(
            "monitor.html", monitor=monitor(events=many), stable=0.1, shifted=0.25
        )
    assert "<summary>The 25 events, numbered as on the line</summary>" in page
    assert page.count('<li data-kind="restarted">') == 25
    assert "Mon 7 Dec 00:24:00 UTC</time>: replica restarted (replica 0: 24)" in page

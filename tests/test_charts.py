"""The SVG charts winserve draws itself (issue 25, ``winserve.web.charts``): hostile column
names are escaped, bars come largest first, and every number drawn is the one given."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from winserve.web import charts

pytestmark = pytest.mark.timeout(30)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & "plan" \'b\''


def parsed(svg: str) -> ET.Element:
    """The chart as XML: it must parse (an unescaped name would break it or inject markup)."""
    return ET.fromstring(svg)


def texts(root: ET.Element, css: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if css in t.get("class", "").split()]


def test_hostile_column_names_are_escaped_in_labels_and_title() -> None:
    svg = charts.contribution_chart([(HOSTILE, 0.25), ("income 52,000", -0.1)], "", HOSTILE)
    assert "<script>" not in svg
    root = parsed(svg)
    assert root.get("aria-label") == HOSTILE  # escaped in the markup, whole once parsed
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == HOSTILE
    labels = texts(root, "label")
    assert labels[0] == charts._short(HOSTILE)  # cut to fit, the table has it whole
    for svg in (
        charts.number_curve(HOSTILE, [1, 2, 3], [0.1, 0.2, 0.3], 2, "", HOSTILE),
        charts.category_bars("plan", [HOSTILE, "basic"], [40.0, 60.0], HOSTILE, "%", HOSTILE),
    ):
        assert "<script>" not in svg
        root = parsed(svg)
        assert root.get("aria-label") == HOSTILE


def test_bars_are_sorted_by_size_either_sign() -> None:
    items = [("a", 0.01), ("b", -0.30), ("c", 0.20), ("d", -0.05), ("e", 0.20)]
    root = parsed(charts.contribution_chart(items, "%", "why"))
    assert texts(root, "label") == ["b", "c", "e", "d", "a"]  # ties keep the columns' order
    widths = [float(r.get("width", "0")) for r in root.iter(f"{SVG}rect")]
    assert widths == sorted(widths, reverse=True)
    # raised the answer: right of the zero line; lowered it: left of it
    zero = float(next(root.iter(f"{SVG}line")).get("x1", "0"))
    for rect, (_, value) in zip(
        list(root.iter(f"{SVG}rect")), charts.sorted_contributions(items), strict=True
    ):
        x = float(rect.get("x", "0"))
        assert (x >= zero - 0.05) if value > 0 else (x < zero)
        assert ("up" in rect.get("class", "")) == (value > 0)


def test_the_values_written_are_the_values_given() -> None:
    items = [("income 52,000", 12.345), ("plan = basic", -4.0), ("age 40", 0.0004)]
    root = parsed(charts.contribution_chart(items, "%", "why"))
    assert texts(root, "value") == ["+12.3 %", "\u22124.0 %", "0.0 %"]
    root = parsed(charts.contribution_chart([("x", 1234.5), ("y", -0.00123)], "", "why"))
    assert texts(root, "value") == ["+1,234.5", "\u22120.00123"]
    values = ["basic", "pro", "team"]
    root = parsed(charts.category_bars("plan", values, [12.5, 40.0, 80.25], "pro", "%", "t"))
    assert texts(root, "value") == ["12.5 %", "40.0 %", "80.2 %"]
    assert texts(root, "label") == ["basic", "pro (now)", "team"]
    rects = list(root.iter(f"{SVG}rect"))
    assert ["current" in r.get("class", "") for r in rects] == [False, True, False]
    assert [float(r.get("width", "0")) for r in rects] == sorted(
        float(r.get("width", "0")) for r in rects
    )


def test_number_curve_passes_through_each_point_and_marks_the_row() -> None:
    xs, ys = [0.0, 10.0, 20.0, 40.0], [1.0, 3.0, 2.0, 5.0]
    root = parsed(charts.number_curve("income", xs, ys, 30.0, "", "what if"))
    line = next(root.iter(f"{SVG}polyline"))
    points = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
    assert len(points) == len(xs)
    # x grows with the value, y (downwards in SVG) falls as the answer grows
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    assert [points[i][1] for i in order] == sorted((p[1] for p in points), reverse=True)
    dot = next(root.iter(f"{SVG}circle"))
    # the row's value, 30, halfway between 20 and 40: halfway up between 2 and 5
    assert float(dot.get("cx", "0")) == pytest.approx((points[2][0] + points[3][0]) / 2, abs=0.1)
    assert float(dot.get("cy", "0")) == pytest.approx((points[2][1] + points[3][1]) / 2, abs=0.1)
    ticks = texts(root, "tick")
    assert {"0", "40", "1", "5"} <= set(ticks)
    flat = parsed(charts.number_curve("x", [1.0, 1.0], [2.0, 2.0], None, "%", "flat"))
    assert not re.search(r"nan|inf", ET.tostring(flat, encoding="unicode"))


def test_numbers_read_as_people_write_them() -> None:
    assert charts.number(52000.0) == "52,000"
    assert charts.number(0.125) == "0.125"
    assert charts.number(1234567.891) == "1,234,567.89"
    assert charts.number(2.5e-7) == "2.5e-07"
    assert charts.signed(0.0, "%") == "0.0 %"


def test_chart_ends_are_short_numbers() -> None:
    assert charts.compact(45452.49) == "45,452"
    assert charts.compact(3.14159) == "3.142"
    assert charts.compact(1.234e9) == "1.23e+09"
    root = parsed(charts.category_bars("region", ["north"], [49236.21], None, "", "t"))
    assert texts(root, "value") == ["49,236"]

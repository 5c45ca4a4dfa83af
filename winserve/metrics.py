"""Counters and histograms in the Prometheus text format (``GET /metrics``), thread-safe.

Small on purpose: winserve needs labelled counters, gauges computed at scrape time and
cumulative histograms, and no dependency for them. Label values are escaped as the exposition
format requires; label sets are bounded by the caller (route templates, not raw paths).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [*labels, extra] if extra else list(labels)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = _header(f"{self.name}_total", "counter", self.help)
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}_total{_labels(k)} {_number(v)}" for k, v in items]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, list[float]] = {}  # bucket counts…, sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            if index < len(self.buckets):
                series[index] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(tuple(sorted(labels.items())))
            return int(series[-1]) if series else 0

    def render(self) -> list[str]:
        return _header(self.name, "histogram", self.help) + self.samples()

    def samples(self, labels: Labels = ()) -> list[str]:
        """The sample lines (no header), each series with ``labels`` added in front: one
        family may gather the histograms of several models."""
        lines: list[str] = []
        with self._lock:
            items = sorted((labels + k, list(v)) for k, v in self._series.items())
        for key, series in items:
            running = 0.0
            for bound, hits in zip(self.buckets, series, strict=False):
                running += hits
                lines.append(
                    f"{self.name}_bucket{_labels(key, ('le', _number(bound)))} {_number(running)}"
                )
            lines.append(f"{self.name}_bucket{_labels(key, ('le', '+Inf'))} {_number(series[-1])}")
            lines.append(f"{self.name}_sum{_labels(key)} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(key)} {_number(series[-1])}")
        return lines


def gauge(name: str, help_text: str, values: Iterable[tuple[Labels, float]]) -> list[str]:
    """A gauge read at scrape time (queue depth, replica state): no state kept here."""
    lines = _header(name, "gauge", help_text)
    lines += [f"{name}{_labels(k)} {_number(v)}" for k, v in values]
    return lines


def counter_snapshot(
    name: str, help_text: str, values: Iterable[tuple[Labels, float]]
) -> list[str]:
    """A counter whose value lives elsewhere (replica restarts), read at scrape time."""
    lines = _header(f"{name}_total", "counter", help_text)
    lines += [f"{name}_total{_labels(k)} {_number(v)}" for k, v in values]
    return lines


def histograms(name: str, help_text: str, parts: Iterable[tuple[Labels, Histogram]]) -> list[str]:
    """One histogram family from several histograms, each under its own labels."""
    lines = _header(name, "histogram", help_text)
    for labels, histogram in parts:
        lines += histogram.samples(labels)
    return lines


def batch_rows_histogram() -> Histogram:
    return Histogram("winserve_batch_rows", "Rows per model call (after batching).", ROW_BUCKETS)

"""The metrics' building blocks, on ``prometheus_client`` (``GET /metrics``; issue 14).

prometheus_client keeps the counters and histograms and writes the text format; this module
holds what winserve adds: the bucket bounds, the histogram every backend keeps of its batch
sizes, and two helpers for families assembled at scrape time. Metrics are never registered in
prometheus_client's global registry: each app has its own ``CollectorRegistry`` (several apps
live in one test process, and two servers must not share counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric

__all__ = ["LATENCY_BUCKETS", "ROW_BUCKETS", "Histogram", "batch_rows_histogram", "labelled"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_ROWS = "winserve_batch_rows"
BATCH_ROWS_HELP = "Rows per model call (after batching)."


def batch_rows_histogram() -> Histogram:
    """Rows per model call, one per backend (one per model version): ``/metrics`` gathers
    them into one family labelled by model (``labelled``). Not registered anywhere."""
    return Histogram(BATCH_ROWS, BATCH_ROWS_HELP, buckets=ROW_BUCKETS, registry=None)


def without_created(families: Iterable[Metric]) -> Iterator[Metric]:
    """The families without their ``_created`` samples. prometheus_client adds one per series
    of a counter or histogram (the time it first appeared); winserve never exposed them, and
    turning them off through prometheus_client is process-wide (``disable_created_metrics``),
    which is not a library's or an app factory's call to make for its whole process."""
    for family in families:
        created = family.name + "_created"
        family.samples = [s for s in family.samples if s.name != created]
        yield family


def labelled(
    name: str, help_text: str, kind: str, parts: Iterable[tuple[dict[str, str], Histogram]]
) -> Metric:
    """One family from several unlabelled metrics (one histogram per backend), each series
    with its own labels added (``model``)."""
    merged = Metric(name, help_text, kind)
    for labels, metric in parts:
        for family in without_created(metric.collect()):
            for sample in family.samples:
                merged.add_sample(sample.name, {**labels, **sample.labels}, sample.value)
    return merged

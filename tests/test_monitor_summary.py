"""The monitor page's aggregates (issue 26, predlog/summary.py) on a SQLite file filled by
hand: requests and errors per hour and per day, latency p50/p95 against numpy, errors by
kind, the share of each class and a regressor's percentiles per bucket; and the events table
(predlog/events.py), written by hand and through a real writer process."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.log_entries import MONDAY, fill
from winserve.predlog import drift, events, jobs, store, summary
from winserve.predlog.record import Entry
from winserve.predlog.writer import PredictionLog

pytestmark = pytest.mark.timeout(60)


def rank(values: list[float], q: int) -> float:
    """numpy's inverted_cdf percentile: the value at rank ceil(q·n) of the sorted values."""
    return float(np.percentile(np.asarray(values), q, method="inverted_cdf"))


def test_counts_errors_and_latency_per_hour_agree_with_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "log.sqlite"
    per_hour = {0: 37, 1: 0, 2: 101, 5: 1}  # hour 1 and 3-4 have nothing
    rows: list[tuple[float, str, float, int, list[object] | None]] = []
    latencies: dict[int, list[float]] = {}
    errors: dict[int, int] = {}
    for hour, n in per_hour.items():
        for _ in range(n):
            ms = float(rng.lognormal(1.5, 0.8))
            status = int(rng.choice([200, 200, 200, 400, 503]))
            rows.append((MONDAY + hour * 3600 + float(rng.uniform(0, 3599)), "m", ms, status, [1]))
            latencies.setdefault(hour, []).append(ms)
            errors[hour] = errors.get(hour, 0) + (status >= 400)
    rows.append((MONDAY + 600, "other", 9999.0, 500, [1]))  # another model's: not counted
    rows.append((MONDAY - 1, "m", 9999.0, 500, [1]))  # before the period
    fill(path, rows)
    fill(path, [(MONDAY + 700, "m", 60_000.0, 200, [1])], kind="job")  # a job: not a request

    found = summary.summarize_file(path, "m", MONDAY, MONDAY + 6 * 3600, classifier=True)

    assert found.bucket_seconds == 3600
    assert [b.start for b in found.buckets] == [MONDAY + h * 3600 for h in range(6)]
    for hour, bucket in enumerate(found.buckets):
        assert bucket.requests == per_hour.get(hour, 0)
        assert bucket.errors == errors.get(hour, 0)
        if per_hour.get(hour):
            assert bucket.p50_ms == pytest.approx(rank(latencies[hour], 50))
            assert bucket.p95_ms == pytest.approx(rank(latencies[hour], 95))
        else:
            assert bucket.p50_ms is None and bucket.p95_ms is None
    everything = [ms for values in latencies.values() for ms in values]
    assert found.requests == len(everything) == 139
    assert found.p50_ms == pytest.approx(rank(everything, 50))
    assert found.p95_ms == pytest.approx(rank(everything, 95))
    by_kind = {(e.status, e.route): e.count for e in found.errors}
    statuses = [r[3] for r in rows[:139]]
    assert by_kind == {
        (400, "/predict"): statuses.count(400),
        (503, "/predict"): statuses.count(503),
    }
    assert found.as_dict()["errors"] == statuses.count(400) + statuses.count(503)


def test_a_long_period_is_shown_per_day(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    fill(path, [(MONDAY + d * 86_400 + 5, "m", 1.0, 200, [0]) for d in (0, 0, 3, 6)])
    found = summary.summarize_file(path, "m", MONDAY, MONDAY + 7 * 86_400, classifier=True)
    assert found.bucket_seconds == 86_400
    assert [b.requests for b in found.buckets] == [2, 0, 0, 1, 0, 0, 1]
    assert summary.bucket_seconds(0, 2 * 86_400) == 3600  # two days: still per hour
    assert summary.bucket_seconds(0, 2 * 86_400 + 1) == 86_400


def test_class_shares_per_bucket(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    # hour 0: 3 "yes" 1 "no" over two requests; hour 1: 1 "no" 1 null; hour 2: none
    fill(
        path,
        [
            (MONDAY + 10, "m", 1.0, 200, ["yes", "yes", "no"]),
            (MONDAY + 20, "m", 1.0, 200, ["yes"]),
            (MONDAY + 3700, "m", 1.0, 200, ["no", None]),
            (MONDAY + 3800, "m", 1.0, 400, None),  # refused before it predicted
        ],
    )
    found = summary.summarize_file(path, "m", MONDAY, MONDAY + 3 * 3600, classifier=True)
    assert found.classes == ("yes", "no", "missing")  # most frequent first
    shares = [dict(p.shares) for p in found.predictions]
    assert shares[0] == {"yes": 0.75, "no": 0.25, "missing": 0.0}
    assert shares[1] == {"yes": 0.0, "no": 0.5, "missing": 0.5}
    assert shares[2] == {} and found.predictions[2].rows == 0
    assert [p.rows for p in found.predictions] == [4, 2, 0]


def test_many_classes_keep_the_most_frequent_and_other(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    labels = [c for i in range(20) for c in [i] * (i + 1)]  # class 19 most frequent
    fill(path, [(MONDAY + 5, "m", 1.0, 200, list(labels))])
    found = summary.summarize_file(path, "m", MONDAY, MONDAY + 3600, classifier=True)
    assert found.classes == (*(str(i) for i in range(19, 7, -1)), "other")
    shares = dict(found.predictions[0].shares)
    assert shares["19"] == pytest.approx(20 / len(labels))
    assert shares["other"] == pytest.approx(sum(range(1, 9)) / len(labels))
    assert math.fsum(shares.values()) == pytest.approx(1.0)


def test_a_regressors_percentiles_per_bucket_agree_with_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    path = tmp_path / "log.sqlite"
    first = [float(v) for v in rng.normal(100, 15, 233)]
    second = [float(v) for v in rng.normal(140, 5, 57)]
    rows: list[tuple[float, str, float, int, list[object] | None]] = [
        (MONDAY + 60 + i, "m", 1.0, 200, first[i * 10 : i * 10 + 10]) for i in range(24)
    ]
    rows.append((MONDAY + 7200, "m", 1.0, 200, [*second[:40], None]))  # a missing answer
    rows.append((MONDAY + 7300, "m", 1.0, 200, second[40:]))
    fill(path, rows)
    found = summary.summarize_file(path, "m", MONDAY, MONDAY + 3 * 3600, classifier=False)
    one, empty, two = found.predictions
    assert one.rows == 233 and empty.rows == 0 and two.rows == 57  # null is not a value
    for got, values in ((one, first), (two, second)):
        assert got.p5 == pytest.approx(rank(values, 5))
        assert got.median == pytest.approx(rank(values, 50))
        assert got.p95 == pytest.approx(rank(values, 95))
    assert empty.median is None and found.classes == ()


def test_a_log_not_written_yet_is_empty(tmp_path: Path) -> None:
    found = summary.summarize_file(
        tmp_path / "none.sqlite", "m", MONDAY, MONDAY + 86_400, classifier=True
    )
    assert found.requests == 0 and len(found.buckets) == 24 and found.p95_ms is None
    assert events.read_file(tmp_path / "none.sqlite", "m", 0, MONDAY) == []


def test_events_in_time_order_and_a_restart_found_by_its_file(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)  # a log from before the events: no table yet
    try:
        assert events.read(conn, "m", 0, MONDAY * 2) == []
        happened: list[events.Event] = [
            (events.MARK, MONDAY + 50, "m", 2, "bbb", "loaded", "m.joblib, loaded in 1.0 s"),
            (events.MARK, MONDAY + 10, "m", 1, "aaa", "loaded", "m.joblib, loaded in 2.0 s"),
            (events.MARK, MONDAY + 30, None, None, "aaa", "restarted", "replica 0: killed"),
            (events.MARK, MONDAY + 40, None, None, "zzz", "restarted", "another model's"),
            (events.MARK, MONDAY + 60, "other", 1, "ccc", "loaded", ""),
            (events.MARK, MONDAY + 70, "m", None, None, "load_failed", "not a model"),
        ]
        assert events.write(conn, happened) == 6
        found = events.read(conn, "m", MONDAY, MONDAY + 3600)
    finally:
        conn.close()
    assert [(e.time - MONDAY, e.words) for e in found] == [
        (10, "version 1 loaded"),
        (30, "replica restarted"),
        (50, "version 2 loaded"),
        (70, "load failed"),
    ]
    assert found[1].detail == "replica 0: killed"


@pytest.mark.spawn
def test_events_travel_with_the_requests_through_the_writer_process(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    plog = PredictionLog(path, interval=0.05)
    stop = events.listen(plog.event)
    plog.start()
    try:
        events.note("loaded", "m", 1, sha256="abc", detail="m.joblib, loaded in 0.5 s")
        plog.put(Entry(time.time(), "r1", "m", 1, "abc", "/predict", "POST", None, 2.0, 200, 1))
        events.note("restarted", None, sha256="abc", detail="replica 0: exit code -9")
    finally:
        stop()
        plog.close()
    events.note("loaded", "m", 2)  # no longer listened to: goes nowhere
    assert plog.written == 1  # the requests' count: events are not requests
    found = events.read_file(path, "m", 0, time.time() + 1)
    assert [e.words for e in found] == ["version 1 loaded", "replica restarted"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 1


def test_the_reservoir_keeps_each_row_equally_often_and_at_most_its_size() -> None:
    rows = [[str(i), "pro"] for i in range(20)]
    kept = [0] * 20
    trials = 4000
    for seed in range(trials):
        sample = jobs.Reservoir(["n", "plan"], [True, False], size=5, seed=seed)
        for start in range(0, 20, 7):  # chunks of 7, 7, 6, as a job reads them
            part = rows[start : start + 7]
            sample.add(part, list(range(start, start + len(part))), [0] * len(part), None)
        record = sample.record(**RECORD)
        lines = record[17]
        assert len(lines) == 5 and lines == sorted(lines)
        for line in lines:
            kept[line] += 1
    # each row kept with probability 5/20: 1,000 of 4,000 trials, ±4.5 standard deviations
    assert all(abs(k - 1000) < 4.5 * math.sqrt(trials * 0.25 * 0.75) for k in kept), kept


def test_the_reservoir_stays_uniform_over_many_chunks_with_refused_rows() -> None:
    """Once full, the reservoir draws how many rows to pass over (Algorithm L) instead of a
    draw per row: each row offered is still kept equally often, rows refused never."""
    rows = [[str(i), "pro"] for i in range(60)]
    refused = {i for i in range(60) if i % 9 in (0, 4)}  # two of each chunk of 9
    kept = [0] * 60
    trials = 3000
    for seed in range(trials):
        sample = jobs.Reservoir(["n", "plan"], [True, False], size=4, seed=seed)
        for start in range(0, 60, 9):
            part = rows[start : start + 9]
            skip = {i - start for i in refused if start <= i < start + 9}
            sample.add(part, list(range(start, start + len(part))), [0] * len(part), None, skip)
        assert sample.seen == 60 - len(refused)
        for line in sample.record(**RECORD)[17]:
            kept[line] += 1
    share = 4 / (60 - len(refused))
    bound = 4.5 * math.sqrt(trials * share * (1 - share))
    for line, count in enumerate(kept):
        if line in refused:
            assert count == 0, line
        else:
            assert abs(count - trials * share) < bound, (line, kept)


def test_a_jobs_entry_holds_its_sample_as_numbers_and_is_not_a_request(tmp_path: Path) -> None:
    sample = jobs.Reservoir(["tenure", "plan"], [True, False], size=3, seed=1)
    sample.add(
        [["12", "pro"], ["", "basic"], ["x", "pro"], ["7.5", None]],
        [2, 3, 4, 5],
        ["stays", "leaves", "stays", float("nan")],
        [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5]],
        skip={2},  # refused by the model: not offered
    )
    assert sample.seen == 3
    record = sample.record(**{**RECORD, "time": MONDAY + 30, "seconds": 4.5, "n_rows": 4})
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    try:
        assert jobs.write(conn, [record], {}) == 1
        found = conn.execute(
            "SELECT kind, latency_ms, n_rows, predictions, sample FROM requests"
        ).fetchone()
    finally:
        conn.close()
    assert found == ("job", 4500.0, 4, '["stays","leaves",null]', "[2,3,5]")
    logged, rows = drift.logged_columns(path, "m", MONDAY, MONDAY + 60, ["tenure", "plan"])
    assert rows == 3 and logged == {"tenure": [12.0, None, 7.5], "plan": ["pro", "basic", None]}
    activity = summary.summarize_file(path, "m", MONDAY, MONDAY + 3600, classifier=True)
    assert activity.requests == 0  # a job is not a request: its duration is no latency
    assert activity.predictions[0].rows == 3  # its sample's answers are counted


RECORD: dict[str, Any] = {
    "time": MONDAY,
    "request_id": "job-1",
    "model": "m",
    "version": 1,
    "sha256": None,
    "route": "/jobs",
    "caller": "127.0.0.1",
    "token_name": "local",
    "seconds": 1.0,
    "status": 200,
    "n_rows": 20,
    "keep_inputs": True,
}


def test_drift_reads_one_request_in_k_of_a_busy_period_spread_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.sqlite"
    conn = store.connect(path)
    try:
        columns = conn.execute("INSERT INTO column_sets (names) VALUES ('[\"x\"]')").lastrowid
        # two models' requests alternating, 400 each, x = the request's number (float64 bytes)
        conn.executemany(
            "INSERT INTO requests (request_id, time, model, route, method, latency_ms, status, "
            "columns, inputs) VALUES (?, ?, ?, '/predict', 'POST', 1.0, 200, ?, ?)",
            [
                (f"r{i}", MONDAY + i, "ab"[i % 2], columns, np.float64(i).tobytes())
                for i in range(800)
            ],
        )
    finally:
        conn.close()
    monkeypatch.setattr(drift, "SAMPLE_REQUESTS", 80)
    for model in "ab":
        found, rows, every = drift.logged_sample(path, model, MONDAY, MONDAY + 800, ["x"])
        assert every == 10  # 800 requests in the period, of both models
        assert 20 <= rows <= 60, rows  # about 400 / 10 of this model's, never all or none
        assert len(found["x"]) == rows and len(set(found["x"])) == rows
        assert all(int(x) % 2 == "ab".index(model) for x in found["x"])  # its own only
        assert min(found["x"]) < 200 and max(found["x"]) >= 600  # spread over the period
    monkeypatch.setattr(drift, "SAMPLE_REQUESTS", 10_000)
    assert drift.logged_sample(path, "a", MONDAY, MONDAY + 800, ["x"])[1:] == (400, 1)


def test_old_events_are_pruned_with_the_log(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "log.sqlite")
    try:
        events.prune(conn, MONDAY)  # no table yet: nothing to do, no error
        events.write(
            conn,
            [
                (events.MARK, MONDAY - 1, "m", 1, None, "loaded", ""),
                (events.MARK, MONDAY + 1, "m", 2, None, "loaded", ""),
            ],
        )
        events.prune(conn, MONDAY)
        left = events.read(conn, "m", 0, MONDAY * 2)
    finally:
        conn.close()
    assert [e.version for e in left] == [2]

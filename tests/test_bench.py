"""The benchmark still runs (``--quick``); its figures are read by people, not asserted here.
Its arithmetic is: the rows per model call read from winserve's real histogram, the shares of
calls, the medians and spread over runs (issue 29)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers import ROOT, bench_script, server_env
from winserve.metrics import batch_rows_histogram


def bench_run() -> ModuleType:
    return bench_script("run")


@pytest.mark.timeout(30)
def test_calls_per_level_are_read_from_winserves_histogram() -> None:
    run = bench_run()
    histogram = batch_rows_histogram()
    registry = CollectorRegistry()
    registry.register(histogram)
    for rows in (1, 1, 5):  # before the level (e.g. the warm-up)
        histogram.observe(rows)
    before = run.parse_batch_rows(generate_latest(registry).decode())
    level = [1, 2, 3, 4, 7, 8, 9, 32, 33, 2000]
    for rows in level:
        histogram.observe(rows)
    calls, rows = run.calls_between(
        before, run.parse_batch_rows(generate_latest(registry).decode())
    )
    assert rows == sum(level)
    expected = {1: 1, 2: 1, 4: 2, 8: 2, 16: 1, 32: 1, 64: 1, float("inf"): 1}
    assert {bound: n for bound, n in calls.items() if n} == expected
    assert sum(calls.values()) == len(level)
    assert run.distribution(calls) == (
        "1: 10% · 2: 10% · 3-4: 20% · 5-8: 20% · 9-16: 10% · 17-32: 10% · 33-64: 10% · 1025+: 10%"
    )
    assert run.distribution({}) == ""


@pytest.mark.timeout(30)
def test_runs_are_summarised_by_medians_and_spread() -> None:
    run = bench_run()

    def one(rps: tuple[float, float, float], errors: int, calls: float) -> object:
        loads = [
            run.Load(c, r, 2.0 * r, 3.0 * r, errors, 0.1 * r, {1.0: calls}, calls)
            for c, r in zip(run.LEVELS, rps, strict=True)
        ]
        return run.Run("winserve", "m", 1.0, 100.0, 120.0 + errors, loads)

    runs = [one((100, 200, 900), 0, 10), one((110, 220, 2000), 1, 30), one((90, 210, 1000), 0, 20)]
    (summary,) = run.summarise(runs)
    c1, c8, c32 = summary.loads
    assert (c1.rps, c8.rps, c32.rps) == (100, 210, 1000)
    assert c32.rps_runs == [900, 2000, 1000]  # in run order: a bimodal level shows as such
    assert c32.spread == pytest.approx((2000 - 900) / 1000)
    assert c1.spread == pytest.approx(0.2)
    assert (c32.p50_ms, c32.p99_ms, c32.web_cpu_ms) == (2000, 3000, pytest.approx(100))
    assert c32.errors == 1 and summary.peak_rss_mb == 121
    assert c32.calls_by_rows == {1.0: 60} and c32.rows_per_call_runs == [1.0, 1.0, 1.0]
    single = run.summarise(runs[:1])[0].loads[2]
    assert single.spread == 0.0 and single.rps_runs == [900]


@pytest.mark.timeout(30)
def test_only_picks_cases_by_model_and_server() -> None:
    run = bench_run()
    assert run.selected([], run.LR, run.LITSERVE)
    assert run.selected(["Logistic Regression, winserve"], run.LR, "winserve")
    assert run.selected(["logistic regression, winserve"], run.LR, run.ONNX_FILE_SERVER)
    assert not run.selected(["logistic regression, winserve"], run.FOREST, "winserve")
    assert not run.selected(["logistic regression, winserve"], run.LR, run.LITSERVE)
    assert run.selected(["forest", "litserve"], run.LR, run.LITSERVE)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk is not installed (apt-get install wrk; .ci/run installs it)",
)
def test_quick_benchmark_runs_and_reports_every_level() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick"],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(
        r"^\| logistic regression \| (baseline \(DataFrame\)|baseline \(NumPy\)|winserve) \| "
        r"\d+ \| (\d+) \| (\d+) \| [\d.]+ \| [\d.]+ \| (\d+) \| ([\d.]+) \| (\d+)% \| ([\d /]+) \| "
        r"([\d. /]*) \| ([^|]*) \|",
        result.stdout,
        re.M,
    )
    servers = ("baseline (DataFrame)", "baseline (NumPy)", "winserve")
    assert sorted((server, int(c)) for server, c, *_ in rows) == [
        (server, c) for server in servers for c in (1, 8, 32)
    ]
    assert all(int(errors) == 0 for _, _, _, errors, *_ in rows), rows
    assert all(float(cpu) > 0 for *_, cpu, _, _, _, _ in rows), rows  # web CPU is measured
    assert all(spread == "0" for *_, spread, _, _, _ in rows), rows  # --quick: one run
    ours = {
        int(c): (per_call, calls.strip())
        for server, c, *_, per_call, calls in rows
        if server == "winserve"
    }
    # winserve's model calls are counted at every level: one client is one row per call
    assert ours[1] == ("1.0", "1: 100%")
    assert all(float(per_call) >= 1 and calls.strip() for per_call, calls in ours.values())
    if importlib.util.find_spec("litserve"):
        lit = re.findall(
            r"^\| logistic regression \| LitServe \(batching\) \| async \| (\d+) \| [\d.]+ \| "
            r"[\d.]+ \| [\d.]+ \| (\d+) \|",
            result.stdout,
            re.M,
        )
        assert sorted(int(c) for c, _ in lit) == [1, 8, 32] and all(e == "0" for _, e in lit)
    else:
        assert "litserve not installed: skipped" in result.stderr
    assert "| no errors at any level |" in result.stdout
    assert "Issue 29 (medians of the runs):" in result.stdout
    assert "| 2 |" in result.stdout and (ROOT / "bench" / "out" / "RESULTS-quick.md").is_file()

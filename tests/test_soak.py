"""bench/soak.py's verdict (issue 28): the checks that decide its exit code, on made-up tallies.

The soak itself runs for minutes against a real server (``python bench/soak.py``); here only
its judging is tested, in process: a 503 counts only inside a kill's restart window, a 500 or a
5xx to a hostile request fails, growing handles fail, a clean run passes.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.helpers import bench_script


def bench_soak() -> ModuleType:
    return bench_script("soak")


SLOW = SimpleNamespace(count=36, connects=100, closed_by_server=64)


def clean_soak(soak_module: ModuleType, tmp_path: Path) -> Any:
    """What a run that held looks like: every kind answered as it should, three kills."""
    soak = soak_module.Soak("http://127.0.0.1:1", tmp_path, 1, 60.0)
    tally = soak.tally
    for t in range(100):
        tally.answers["valid predict (single)"].append((float(t), 200))
        tally.answers["invalid: wrong type"].append((float(t), 400))
        tally.answers["hostile: made-up path"].append((float(t), 404))
        tally.answers[soak_module.LOGIN].append((float(t), 413 if t % 2 else 0))
        tally.answers["/health"].append((float(t), 200))
        tally.answers["/metrics"].append((float(t), 200))
    tally.windows.append([10.0, 20.0])
    soak.kills = [("alpha", 3.0, "under load")] * 3
    soak.jobs = [("alpha", 2000, "ok")] * 4
    soak.metrics_sizes = [9_000, 40_000]
    soak.samples = [(0.0, 40.0, 60, 40, 4), (5.0, 70.0, 80, 45, 4), (60.0, 80.0, 90, 45, 4)]
    return soak


@pytest.mark.timeout(60)
def test_a_soak_that_held_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = bench_soak()
    assert module.table(clean_soak(module, tmp_path), SLOW, 0, 1.5, 0) == 0
    assert "checks: all passed" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_a_503_counts_only_inside_a_kills_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = bench_soak()
    soak = clean_soak(module, tmp_path)
    for when in (15.0, 50.0):  # the kill's window is 10–20 s
        soak.tally.answers["valid predict (batch)"].append((when, 503))
        soak.tally.answers["valid 503"].append((when, 503))
    assert module.table(soak, SLOW, 0, 1.5, 0) == 1
    out = capsys.readouterr().out
    assert "inside a kill's restart window: 1, outside: 1" in out
    assert "1 valid predictions got 503 outside a kill" in out


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("valid oip (single)", 500, "valid oip (single): a 500"),
        ("hostile: made-up method", 502, "not a 4xx"),
        ("invalid: huge name", 200, "not a 4xx"),
        ("valid invocations (batch)", -1, "valid invocations (batch): Counter({-1: 1})"),
    ],
)
def test_a_wrong_answer_fails_the_soak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, status: int, expected: str
) -> None:
    module = bench_soak()
    soak = clean_soak(module, tmp_path)
    soak.tally.answers[kind].append((30.0, status))
    assert module.table(soak, SLOW, 0, 1.5, 0) == 1
    assert expected in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_growing_handles_a_slow_exit_and_a_lost_row_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = bench_soak()
    soak = clean_soak(module, tmp_path)
    soak.samples.append((65.0, 80.0, 500, 45, 4))
    soak.jobs.append(("beta", 2000, "1999 result rows for 2000 ids, 1999 distinct"))
    assert module.table(soak, SLOW, None, 10.0, 2) == 1
    out = capsys.readouterr().out
    assert "open handles grew from 80 to 500" in out
    assert "1 CSV jobs failed, first on beta (2000 rows): 1999 result rows" in out
    assert "Ctrl+C: exit code None" in out
    assert "2 model processes left after exit" in out

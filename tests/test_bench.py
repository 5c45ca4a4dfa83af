"""The benchmark still runs (``--quick``); its figures are read by people, not asserted here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, server_env

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.spawn]


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
        r"\d+ \| (\d+) \| (\d+) \| [\d.]+ \| [\d.]+ \| (\d+) \| ([\d.]+) \|",
        result.stdout,
        re.M,
    )
    servers = ("baseline (DataFrame)", "baseline (NumPy)", "winserve")
    assert sorted((server, int(c)) for server, c, *_ in rows) == [
        (server, c) for server in servers for c in (1, 8, 32)
    ]
    assert all(int(errors) == 0 for _, _, _, errors, _ in rows), rows
    assert all(float(cpu) > 0 for *_, cpu in rows), rows  # web CPU per request is measured
    assert "| no errors at any level |" in result.stdout
    assert "| 2 |" in result.stdout and (ROOT / "bench" / "out" / "RESULTS-quick.md").is_file()

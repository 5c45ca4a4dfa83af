"""While a scoring job runs the GIL is handed over every 0.5 ms, not 5 (issue 29,
``winserve.scoring.handover``): users' requests wait less behind the job, and the interval the
process had is back once no job runs."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes import ended_job
from winserve.scoring import handover


def test_short_while_any_job_runs_and_put_back_after_the_last() -> None:
    found = sys.getswitchinterval()
    assert found > handover.JOB_SWITCH_SECONDS  # Python's 5 ms
    first, second = threading.Event(), threading.Event()
    with handover.job_running():
        assert sys.getswitchinterval() == handover.JOB_SWITCH_SECONDS
        worker = threading.Thread(target=_job, args=(first, second))
        worker.start()
        first.wait(5)
    # the first job is over; the second still runs: still short
    assert sys.getswitchinterval() == handover.JOB_SWITCH_SECONDS
    second.set()
    worker.join(5)
    assert sys.getswitchinterval() == found
    with pytest.raises(RuntimeError), handover.job_running():  # a job that fails
        raise RuntimeError("the job failed")
    assert sys.getswitchinterval() == found


def _job(started: threading.Event, end: threading.Event) -> None:
    with handover.job_running():
        started.set()
        end.wait(5)


def test_a_scoring_job_runs_with_the_short_interval(tmp_path: Path) -> None:
    """The interval as a chunk's model call sees it, in a real job of the job manager."""
    found = sys.getswitchinterval()
    seen: list[float] = []

    def clock() -> float:  # the job times each chunk's call with it
        seen.append(sys.getswitchinterval())
        return time.monotonic()

    with ended_job(tmp_path, 3_000, 30, clock=clock) as job:
        assert job.state == "done", job.status()
    assert len(seen) >= 2 * 3  # two readings a chunk, several chunks
    assert set(seen) == {handover.JOB_SWITCH_SECONDS}
    assert sys.getswitchinterval() == found

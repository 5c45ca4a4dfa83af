"""CSV scoring on a disk that fills up (issue 28 item 4), on a real 2 MB tmpfs used as the
setting ``jobs_path``: uploads refused before they are written when the disk lacks the space,
jobs that hit a full disk fail with a sentence and free their place, scoring comes back by
itself when space returns, and a version drained meanwhile stops its model process."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import csv_server
from tests.helpers import model_hosts, running_server, wait_until
from tests.model_files import constant_model
from winserve.scoring import jobs

THIRD = 1 / 3  # written as 0.3333333333333333: a result six times the size of its "1,2" rows
ROWS = 25_000
CSV = ("a,b\n" + "1,2\n" * ROWS).encode()  # 100 KB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted at the end; the test is skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def _leave_free(disk: Path, name: str, free: int) -> Path:
    """A ballast file that leaves about ``free`` bytes free on ``disk``."""
    ballast = disk / name
    size = shutil.disk_usage(disk).free - free
    assert size > 0, (shutil.disk_usage(disk), free)
    ballast.write_bytes(b"\0" * size)
    return ballast


def _floor(disk: Path) -> int:
    return min(jobs.FREE_FLOOR, shutil.disk_usage(disk).total // 20)


def _job_files(disk: Path) -> list[Path]:
    """The files of jobs on ``disk`` (not the folders' markers, not the ballast)."""
    return [p for p in disk.rglob("*") if p.is_file() and p.parent != disk and p.name != ".owner"]


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(240)
def test_a_full_disk_fails_jobs_cleanly_and_scoring_comes_back(
    tmp_path: Path, small_disk: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "const.joblib", THIRD)
    args = [str(folder), "--jobs-path", str(small_disk), "--watch-seconds", "0.5"]
    with running_server(args, cwd=tmp_path) as server:
        url, page = server.url, f"{server.url}/models/const/"
        session = requests.Session()
        # room for the upload twice over (the check) but not for its result: both jobs fail
        # on the full disk, with a sentence, and leave nothing behind
        ballast = _leave_free(small_disk, "ballast", _floor(small_disk) + 2 * len(CSV) + 40_000)
        for _ in range(2):
            job = csv_server.submit(session, page, CSV)
            ended = csv_server.finished(session, url, job)
            assert ended["state"] == "failed", ended
            assert "disk" in ended["error"] and "full" in ended["error"], ended["error"]
            assert "jobs_path" in ended["error"]
            assert _job_files(small_disk) == []
        # less room than the upload needs: refused before it is written, 503 with the reason
        tight = _leave_free(small_disk, "ballast-2", len(CSV))
        refused = session.post(
            f"{page}jobs",
            data={"csrf_token": csv_server.page_token(session, page)},
            files={"file": ("rows.csv", CSV, "text/csv")},
            allow_redirects=False,
            timeout=30,
        )
        assert refused.status_code == 503, refused.text[:300]
        assert "disk" in refused.text and "full" in refused.text
        assert refused.headers["Retry-After"] == "60"
        assert _job_files(small_disk) == []

        # the failed jobs held no place: the version they ran on drains and its process stops
        hosts = len(model_hosts(server.proc.pid))
        constant_model(tmp_path / "const.tmp", 2.0)
        os.replace(tmp_path / "const.tmp", folder / "const.joblib")
        server.wait_for_line(lambda line: "version 1 stopped" in line, timeout=60)
        wait_until(lambda: len(model_hosts(server.proc.pid)) == hosts, 15)

        # space comes back: the next upload is scored, with no restart
        ballast.unlink()
        tight.unlink()
        job = csv_server.submit(session, page, CSV)
        done = csv_server.finished(session, url, job)
        assert done["state"] == "done" and done["scored_rows"] == ROWS, done
        header, rows = csv_server.scored(session, url, job)
        assert header == ["a", "b", "prediction", "error", "request id"]  # issue 27
        assert len(rows) == ROWS and {r[2] for r in rows} == {"2.0"}

        started = time.monotonic()
        answer = requests.post(f"{url}/models/const/predict", json=[{"a": 1, "b": 2}], timeout=5)
        assert answer.json() == {"predictions": [2.0]}
        assert time.monotonic() - started < 5


@pytest.mark.timeout(60)
def test_an_upload_that_fills_the_disk_is_deleted_and_frees_its_place(small_disk: Path) -> None:
    """The upload's own write fails (ENOSPC): it used to stay "queued" for ever, and two of
    them refused every later upload ("2 files are being scored already")."""
    from winserve.backends.local import LocalBackend
    from winserve.model_info import ModelSpec
    from winserve.service import Service

    service = Service(LocalBackend(ModelSpec()), max_rows=100)  # never called: no upload scored
    manager = jobs.JobManager(
        service, max_rows=100, keep_seconds=60, max_running=2, parent=small_disk
    )
    try:
        for _ in range(3):  # one more than may run at once
            job = manager.new("big.csv")
            with pytest.raises(jobs.TooBusy) as refused:
                manager.save(job, lambda path: path.write_bytes(b"1,2\n" * 1_000_000))
            assert refused.value.status == 503
            assert "disk" in refused.value.message and "jobs_path" in refused.value.message
            assert not job.directory.exists()
            assert not manager.busy()
        job = manager.new("small.csv")
        manager.save(job, lambda path: path.write_bytes(b"a,b\n1,2\n"))
        assert job.source.read_bytes() == b"a,b\n1,2\n" and manager.busy()
    finally:
        manager.close()
    assert list(small_disk.iterdir()) == []

"""A folder of models under races and leftovers (issue 28 items 5 and 8, and the low ones): a
file put back as it was is served again; loads and unloads of one name at once leave exactly
the processes the repository lists; a killed winserve's files are swept at the next start,
never a running one's; a long file name keeps the cached copy's path short. Real servers,
real spawned model hosts, real files."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from tests import csv_server
from tests.helpers import model_hosts, running_server, server_env, wait_until
from tests.model_files import ROW, constant_model

TOKEN = "race-token-28"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WATCH = 0.5


def _index(url: str) -> dict[str, dict[str, str]]:
    answer = requests.post(f"{url}/v2/repository/index", headers=BEARER, timeout=10)
    assert answer.status_code == 200, answer.text
    return {item["name"]: item for item in answer.json()}


def _repository(url: str, name: str, action: str) -> requests.Response:
    return requests.post(f"{url}/v2/repository/models/{name}/{action}", headers=BEARER, timeout=120)


def _predict(url: str, name: str) -> requests.Response:
    return requests.post(f"{url}/models/{name}/predict", json=[ROW], headers=BEARER, timeout=10)


def _settled(server_pid: int, url: str) -> tuple[int, int]:
    """Model processes running, and models the repository lists as READY, once equal for a
    second (versions draining stop within it)."""

    def equal() -> tuple[int, int] | None:
        counts = (
            len(model_hosts(server_pid)),
            sum(i["state"] == "READY" for i in _index(url).values()),
        )
        return counts if counts[0] == counts[1] else None

    first = wait_until(equal, 30)
    time.sleep(1.0)
    again = wait_until(equal, 30)
    assert first == again
    return again


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(240)
def test_a_file_put_back_as_it_was_is_served_again(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = constant_model(folder / "const.joblib", 4.0)
    aside = tmp_path / "aside"
    aside.mkdir()
    with running_server([str(folder), "--watch-seconds", str(WATCH)], cwd=tmp_path) as server:
        url = server.url
        assert requests.post(f"{url}/models/const/predict", json=[ROW], timeout=10).ok
        for put_back in ("copied with its old time", "renamed back"):
            before = model.stat()
            os.replace(model, aside / model.name)
            wait_until(
                lambda: (
                    "const" not in requests.get(f"{url}/health", timeout=5).json().get("models", {})
                ),
                30,
            )
            if put_back == "renamed back":
                os.replace(aside / model.name, model)
            else:  # a new file, same bytes, same size and time (cp -p, a backup unzipped)
                shutil.copyfile(aside / model.name, model)
                (aside / model.name).unlink()
                os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
                assert model.stat().st_mtime_ns == before.st_mtime_ns
            answered = wait_until(
                lambda: (
                    (
                        r := requests.post(f"{url}/models/const/predict", json=[ROW], timeout=10)
                    ).status_code
                    == 200
                    and r
                ),
                30,
            )
            assert answered.json() == {"predictions": [4.0]}, put_back
            health = requests.get(f"{url}/health", timeout=5).json()
            assert "const" in health["models"], (put_back, health)
            index = requests.post(f"{url}/v2/repository/index", timeout=5).json()
            assert [i["state"] for i in index if i["name"] == "const"] == ["READY"], index
            assert "const" in requests.get(f"{url}/", timeout=5).text
        started = time.monotonic()
        assert requests.post(f"{url}/models/const/predict", json=[ROW], timeout=5).ok
        assert time.monotonic() - started < 5


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(300)
def test_loads_and_unloads_at_once_leave_only_listed_processes(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    constant_model(folder / "const.joblib", 1.0)
    constant_model(folder / "other.joblib", 9.0)
    with running_server([str(folder), "--token", TOKEN], cwd=tmp_path) as server:
        url, pid = server.url, server.proc.pid
        assert _settled(pid, url) == (2, 2)

        # eight loads of one unloaded name at once: one new version, one process
        assert _repository(url, "const", "unload").status_code == 200
        assert _settled(pid, url) == (1, 1)
        answers: list[int] = []
        loads = [
            threading.Thread(
                target=lambda: answers.append(_repository(url, "const", "load").status_code)
            )
            for _ in range(8)
        ]
        for thread in loads:
            thread.start()
        for thread in loads:
            thread.join(150)
        assert answers == [200] * 8
        assert _settled(pid, url) == (2, 2)
        described = requests.get(f"{url}/models/const", headers=BEARER, timeout=10).json()
        assert described["version"] == 2  # version 1, unloaded, then one load: not 2 … 9

        # an unload that lands during a load: the load ends, then the unload; no process
        # runs that the repository does not list
        for _ in range(2):
            assert _repository(url, "const", "load").status_code == 200  # serving already
            assert _repository(url, "const", "unload").status_code == 200
            assert _settled(pid, url) == (1, 1)
            loading = threading.Thread(target=_repository, args=(url, "const", "load"))
            loading.start()
            wait_until(lambda: _index(url).get("const", {}).get("state") == "LOADING", 30, 0.01)
            assert _repository(url, "const", "unload").status_code == 200
            loading.join(150)
            # listed as Triton lists it, running nothing (issue 23: it left the index before)
            unloaded = {"name": "const", "state": "UNAVAILABLE", "reason": "unloaded"}
            assert _index(url)["const"] == unloaded
            assert _settled(pid, url) == (1, 1)

        # loads and unloads mixed: whatever the order, what runs is what is listed
        mixed = [
            threading.Thread(target=_repository, args=(url, "const", action))
            for action in ["load", "unload", "load", "load", "unload", "load"]
        ]
        for thread in mixed:
            thread.start()
            time.sleep(0.05)
        for thread in mixed:
            thread.join(150)
        _settled(pid, url)

        assert _repository(url, "const", "load").status_code == 200
        started = time.monotonic()
        assert _predict(url, "const").json() == {"predictions": [1.0]}
        assert _predict(url, "other").json() == {"predictions": [9.0]}
        assert time.monotonic() - started < 5


def _folders(parent: Path) -> set[str]:
    return {p.name for p in parent.iterdir() if p.is_dir()} if parent.is_dir() else set()


@pytest.mark.server
@pytest.mark.spawn
@pytest.mark.timeout(300)
def test_a_killed_winserves_leftovers_are_swept_and_a_running_ones_kept(tmp_path: Path) -> None:
    cache, jobs = tmp_path / "cache", tmp_path / "jobs"
    loaded = cache / "winserve" / "loaded"
    env = server_env(XDG_CACHE_HOME=str(cache))
    model = constant_model(tmp_path / "const.joblib", 3.0)
    args = [str(model), "--jobs-path", str(jobs), "--watch-seconds", str(WATCH)]
    rows = ("a,b\n" + "1,2\n" * 100).encode()

    # 1. a winserve killed outright with a finished job and its model copy on disk
    with running_server(args, cwd=tmp_path, env=env) as killed:
        session = requests.Session()
        job = csv_server.submit(session, f"{killed.url}/", rows)
        assert csv_server.finished(session, killed.url, job)["state"] == "done"
        killed.proc.kill()
        killed.proc.wait(10)
        wait_until(lambda: not model_hosts(killed.proc.pid), 10)
    left_jobs, left_copies = _folders(jobs), _folders(loaded)
    assert left_jobs and left_copies
    # folders with no marker (an older winserve's): a fresh one stays, one of two days goes;
    # the operator's own folder in jobs_path stays, and so do an older winserve's model copies
    # (it may be running)
    two_days_ago = time.time() - 2 * 86400
    for made in (jobs / "run-fresh", jobs / "run-stale", jobs / "reports", loaded / "old-1234"):
        made.mkdir()
        os.utime(made, (two_days_ago, two_days_ago))
    os.utime(jobs / "run-fresh")
    kept = {"run-fresh", "reports"}

    # 2. the next winserve sweeps them at its start
    with running_server(args, cwd=tmp_path, env=env) as running:
        assert not (_folders(jobs) & left_jobs) and not (_folders(loaded) & left_copies)
        assert kept <= _folders(jobs) and "run-stale" not in _folders(jobs)
        assert "old-1234" in _folders(loaded)
        session = requests.Session()
        job = csv_server.submit(session, f"{running.url}/", rows)
        assert csv_server.finished(session, running.url, job)["state"] == "done"
        own_jobs, own_copies = _folders(jobs) - kept, _folders(loaded) - {"old-1234"}
        assert own_jobs and own_copies

        # 3. a third winserve starting while the second runs leaves the second's alone
        with running_server(args, cwd=tmp_path, env=env) as third:
            assert _folders(jobs) >= own_jobs and _folders(loaded) >= own_copies
            assert requests.post(f"{third.url}/predict", json=[ROW], timeout=10).ok
            assert third.stop() == 0
        header, scored = csv_server.scored(session, running.url, job)
        assert header[-3:] == ["prediction", "error", "request id"] and len(scored) == 100
        started = time.monotonic()
        answer = requests.post(f"{running.url}/predict", json=[ROW], timeout=5)
        assert answer.json() == {"predictions": [3.0]}
        assert time.monotonic() - started < 5
        assert running.stop() == 0
    # a winserve that stops deletes its own
    assert _folders(jobs) == kept and _folders(loaded) == {"old-1234"}


@pytest.mark.timeout(120)
def test_a_long_file_name_keeps_the_cached_copy_path_short(tmp_path: Path) -> None:
    """Windows refuses paths past 260 characters: the copy's path is the cache's, a short
    folder, and the file's name (the name was in it twice, its first 40 characters as the
    folder's)."""
    from winserve.backends.local import LocalBackend
    from winserve.models.registry import Registry
    from winserve.settings import Settings

    folder = tmp_path / "models"
    folder.mkdir()
    name = "quarterly churn model for the sales regions " * 4  # 176 characters
    constant_model(folder / f"{name}.joblib", 5.0)
    registry = Registry(Settings(model=folder), lambda spec, workers: LocalBackend(spec))
    try:
        registry.start()
        registry.wait_loaded(60)
        slot = registry.acquire(name)
        registry.release(slot)
        assert slot.copy is not None
        copy = slot.copy / f"{name}.joblib"
        assert copy.is_file()
        overhead = len(str(copy)) - len(str(registry.copies)) - len(f"{name}.joblib")
        assert overhead <= 12, copy  # a separator, 8 characters, a separator
        assert slot.service.info().name == name  # served under the file's own name
    finally:
        registry.close()
    assert not slot.copy.exists()

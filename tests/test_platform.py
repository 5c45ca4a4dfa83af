"""Windows-specific logic that can be checked on any OS (the real calls run in the Windows lane)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers import server_env
from winserve import platform, winconsole


def test_close_event_requests_a_stop_and_waits_for_it() -> None:
    stopped = threading.Event()
    calls: list[float] = []

    def request_stop() -> None:
        calls.append(time.monotonic())
        threading.Timer(0.2, stopped.set).start()

    handle = winconsole.make_handler(request_stop, stopped, budget=3.0)
    started = time.monotonic()
    assert handle(winconsole.CTRL_CLOSE_EVENT) is False
    assert len(calls) == 1 and stopped.is_set()
    assert 0.15 < time.monotonic() - started < 2.0


def test_close_handler_gives_up_after_its_budget() -> None:
    handle = winconsole.make_handler(lambda: None, threading.Event(), budget=0.2)
    started = time.monotonic()
    assert handle(winconsole.CTRL_SHUTDOWN_EVENT) is False
    assert 0.15 < time.monotonic() - started < 1.0


def test_ctrl_c_and_break_are_left_to_python() -> None:
    calls: list[int] = []
    handle = winconsole.make_handler(lambda: calls.append(1), threading.Event(), budget=0.1)
    assert handle(winconsole.CTRL_C_EVENT) is False
    assert handle(winconsole.CTRL_BREAK_EVENT) is False
    assert calls == []


def test_nothing_is_registered_off_windows() -> None:
    if not platform.IS_WINDOWS:
        assert winconsole.install_close_handler(lambda: None, threading.Event()) is False


def test_cache_dir_is_per_user() -> None:
    path = platform.cache_dir()
    assert path.name in {"winserve", "Cache"} and "winserve" in path.parts


def test_a_cp1252_console_does_not_lose_the_output(tmp_path: Path) -> None:
    """A Windows pipe or console in cp1252 cannot encode "→" (in the demo's model type)."""
    env = {**server_env(PYTHONIOENCODING="cp1252"), "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "winserve", "check"],
        capture_output=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    output = result.stdout.decode("cp1252")
    assert result.returncode == 0, output + result.stderr.decode("cp1252", "replace")
    assert "Pipeline(StandardScaler ? LogisticRegression)" in output

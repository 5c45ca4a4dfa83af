"""Noticing that the model file changed on disk while it is served (real files, a real thread)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.helpers import wait_until
from winserve.model_file import sha256_of, watch


def test_the_operator_is_told_once_per_change_and_when_it_is_back(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"the model that was loaded")
    loaded = sha256_of(model)
    said: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(model, loaded, stop, said.append, 0.05))
    watcher.start()
    try:
        os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same content
        time.sleep(0.5)
        assert said == []
        model.write_bytes(b"a retrained model")
        wait_until(lambda: len(said) == 1, 10)
        assert said[0].startswith("model.joblib changed on disk (SHA-256 ")
        assert f"{loaded[:12]}… loaded" in said[0]
        model.write_bytes(b"the model that was loaded")
        wait_until(lambda: len(said) == 2, 10)
        assert (
            said[1] == f"model.joblib is again the file winserve loaded (SHA-256 {loaded[:12]}…)."
        )
        model.unlink()  # being replaced: nothing to say until it is back
        time.sleep(0.5)
        assert len(said) == 2
    finally:
        stop.set()
        watcher.join(5)
    assert not watcher.is_alive()


def test_a_change_before_the_watch_began_is_told_too(tmp_path: Path) -> None:
    """The file may be overwritten between the load and the first look."""
    model = tmp_path / "model.joblib"
    model.write_bytes(b"the model that was loaded")
    loaded = sha256_of(model)
    model.write_bytes(b"overwritten at once")
    said: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(model, loaded, stop, said.append, 0.05))
    watcher.start()
    try:
        wait_until(lambda: said, 10)
        assert "changed on disk" in said[0]
    finally:
        stop.set()
        watcher.join(5)

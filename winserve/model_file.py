"""The model file on disk: its SHA-256, and noticing when it changes while winserve serves it.

A data scientist who retrains and overwrites ``model.joblib`` may expect colleagues to get the
new model at once. winserve keeps serving the model it loaded (a restarted model process loads
the file only while it is the same one), so the console says when the file on disk changed and
what to do. The watch costs one ``stat`` every few seconds; the file is hashed once at the start and
then only when its size or time changed and has stopped changing (a copy still being written is
not hashed).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

WATCH_SECONDS = 2.0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():  # an MLflow model folder: every file in it, by name and content
        for name, file in sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*")):
            # importing the folder's code/ writes __pycache__: not a change of the model
            if file.is_file() and "__pycache__" not in name.split("/"):
                digest.update(f"{name}\0{sha256_of(file)}\n".encode())
        return digest.hexdigest()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp(path: Path) -> tuple[int, int] | None:
    """Size and time of a file (or of an MLflow folder's files: their count plus sizes, and
    the newest time): what changes when it is written; None when it is gone."""
    try:
        if path.is_dir():
            stats = [p.stat() for p in path.rglob("*") if p.is_file()]
            return len(stats) + sum(s.st_size for s in stats), max(
                (s.st_mtime_ns for s in stats), default=0
            )
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def watch(
    path: Path,
    loaded_sha256: str,
    stop: threading.Event,
    say: Callable[[str], None],
    interval: float = WATCH_SECONDS,
) -> None:
    """Until ``stop`` is set, ``say`` once whenever the file's content becomes different from
    what was said last (the loaded file to begin with)."""
    seen: tuple[int, int] | None = None  # so the first round hashes: it may have changed already
    current = loaded_sha256
    while not stop.wait(interval):
        now = stamp(path)
        if now == seen or now is None:
            continue  # unchanged, or missing for the moment (being replaced)
        seen = now
        if stop.wait(interval) or stamp(path) != now:
            continue  # still being written: look again on the next round
        try:
            digest = sha256_of(path)
        except OSError:
            continue
        if digest == current:
            continue
        current = digest
        if digest == loaded_sha256:
            say(f"{path.name} is again the file winserve loaded (SHA-256 {digest[:12]}…).")
        else:
            say(
                f"{path.name} changed on disk (SHA-256 {digest[:12]}… now, "
                f"{loaded_sha256[:12]}… loaded). winserve keeps serving the model it loaded; "
                "to serve the new file, stop winserve (Ctrl+C) and start it again."
            )

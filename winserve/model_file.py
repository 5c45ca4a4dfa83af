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
import sys
import threading
from collections.abc import Callable
from pathlib import Path

WATCH_SECONDS = 2.0
WINDOWS = sys.platform == "win32"  # st_ctime is the creation time there, not the change time


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


Stamp = tuple[int, ...]


def stamp(path: Path) -> Stamp | None:
    """What changes when a file is written or replaced: its size, time, inode (the file's
    identity on the disk, Windows' file index) and, but on Windows, its inode change time,
    which a rename or a write sets and no program can set back (issue 28 item 5: a time put back
    by ``cp -p`` or an unzip made another file look like the one tried before); for an MLflow
    folder, the same over its files (their count plus sizes, the newest times, the inodes'
    sum). None when it is gone."""
    try:
        if not path.is_dir():
            s = path.stat()
            return (s.st_size, s.st_mtime_ns, s.st_ino, 0 if WINDOWS else s.st_ctime_ns)
        stats = [p.stat() for p in path.rglob("*") if p.is_file()]
    except OSError:
        return None
    return (
        len(stats) + sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=0),
        sum(s.st_ino for s in stats),
        0 if WINDOWS else max((s.st_ctime_ns for s in stats), default=0),
    )


def watch(
    path: Path,
    loaded_sha256: str,
    stop: threading.Event,
    say: Callable[[str], None],
    interval: float = WATCH_SECONDS,
) -> None:
    """Until ``stop`` is set, ``say`` once whenever the file's content becomes different from
    what was said last (the loaded file to begin with)."""
    seen: Stamp | None = None  # so the first round hashes: it may have changed already
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

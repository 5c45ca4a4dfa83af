"""How far a model's load has gone, for the console, the model's page and ``/health`` (issue 24:
a model of hundreds of megabytes takes a while, and the person waiting should see it move).

::

    Loader.load(name, path) (a load thread)          a ticker thread (one per load)
      Tracker(name, size) ─► copying: read(n) per     every interval() s while the load runs
        chunk of the private copy (bytes read)          (5 s, then 15 s, then a minute):
      loading(): the model process loads it             log.info(name: line())
      end(): the load is over (loaded or not)         ends with the load
        │ snapshot()
        ▼
    LoadProgress (frozen) ─► registry status ─► the data plane's health summary ─► /health's
      "loading" entry, the model list, the page's status line ("loading: 340 MB, 12 s")

The copy is measured in bytes (it is the part whose speed the disk decides); the load in the
model process is measured in seconds only (a pickle, a graph or a PyTorch file tells nobody how
far it has gone). A load shorter than ``TICK`` prints nothing more than it always did.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("winserve")

TICK = 5.0  # seconds between the console's progress lines in a load's first minute
TICK_LATER = 15.0  # then, up to five minutes: a slow load does not fill the window
TICK_LAST = 60.0  # after five minutes (a 30-minute load prints 52 lines, not 360)
LATER, LAST = 60.0, 300.0


def interval(seconds: float) -> float:
    """Seconds to the next progress line, ``seconds`` into a load."""
    if seconds < LATER:
        return TICK
    return TICK_LATER if seconds < LAST else TICK_LAST


def size_text(size: int) -> str:
    """A file's size as people read it: 340 MB, 1.2 GB, 12 kB, 512 bytes (decimal units,
    as Windows Explorer's column is close enough to and as disk makers print)."""
    if size >= 10**9:
        return f"{size / 10**9:.1f} GB"
    if size >= 10**6:
        return f"{size / 10**6:.0f} MB" if size >= 10**7 else f"{size / 10**6:.1f} MB"
    if size >= 10**3:
        return f"{size / 10**3:.0f} kB"
    return f"{size} bytes"


def seconds_text(seconds: float) -> str:
    """Elapsed time, whole seconds (a load's progress line: 12 s, 2 min 5 s)."""
    whole = int(seconds)
    if whole >= 120:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole} s"


def duration_text(seconds: float) -> str:
    """How long a job took, as its page and the log say it: 0.16 s (a short job was shown
    "0.0 s"), 12.3 s, 2 min 5 s."""
    if seconds < 0.01:
        return "less than 0.01 s"
    if seconds < 0.995:  # what rounds to 1.00 is said 1.0
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return seconds_text(seconds)


def size_of(path: Path | None) -> int:
    """The bytes a load reads: a file's size, a folder's files (an MLflow model); 0 without a
    file (a factory, the demo) or when it cannot be read."""
    if path is None:
        return 0
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class LoadProgress:
    """One load, at one moment: the file's size, how much of its private copy was read, and
    the seconds since the load began."""

    size: int  # bytes of the file or folder (0: no file, a factory or the demo)
    read: int  # bytes of the private copy read so far (== size once copied; 0 without copy)
    copying: bool  # the copy runs now (else the model process loads)
    seconds: float  # since the load began

    def text(self) -> str:
        """``340 MB, 12 s``; while copying, ``copying 120 of 340 MB, 3 s``."""
        elapsed = seconds_text(self.seconds)
        if self.copying:
            return f"copying {_part(self.read, self.size)} of {size_text(self.size)}, {elapsed}"
        return f"{size_text(self.size)}, {elapsed}" if self.size else elapsed

    def line(self) -> str:
        """The console's progress line (after the model's name)."""
        if self.copying:
            percent = 100 * self.read // self.size if self.size else 0
            return f"{self.text()} ({percent} %)"
        size = f" ({size_text(self.size)})" if self.size else ""
        return f"loading in the model process… {seconds_text(self.seconds)}{size}"

    def to_dict(self) -> dict[str, Any]:
        """``/health``'s ``loading`` entry."""
        return {
            "phase": "copying" if self.copying else "loading",
            "size_bytes": self.size,
            "read_bytes": self.read,
            "seconds": int(self.seconds * 10) / 10,  # down, as the text's whole seconds
            "text": self.text(),
        }


def _part(read: int, size: int) -> str:
    """Bytes read, in the unit of ``size`` (``120`` of 340 MB, ``0.4`` of 1.2 GB)."""
    if size >= 10**9:
        return f"{read / 10**9:.1f}"
    if size >= 10**7:
        return f"{read / 10**6:.0f}"
    if size >= 10**6:
        return f"{read / 10**6:.1f}"
    if size >= 10**3:
        return f"{read / 10**3:.0f}"
    return str(read)


class Tracker:
    """One running load's progress, read by any thread (``snapshot``), told by the load thread
    (``read``, ``loading``, ``end``); prints a progress line every ``interval()`` s while it
    runs (every ``tick`` s when given: the tests')."""

    def __init__(self, name: str, size: int, *, copying: bool, tick: float | None = None) -> None:
        self.name = name
        self._size = size
        self._read = 0
        self._copying = copying
        self._started = time.monotonic()
        self._ended = threading.Event()
        self._tick = tick
        self._ticker = threading.Thread(
            target=self._tell, name=f"winserve-progress-{name}", daemon=True
        )
        self._ticker.start()

    def read(self, count: int) -> None:
        """``count`` more bytes of the private copy were read (and written)."""
        self._read += count  # one writer (the load thread); readers see a whole int

    def loading(self) -> None:
        """The copy is done: the model process loads the model now."""
        self._copying = False

    def end(self) -> None:
        self._ended.set()

    def snapshot(self) -> LoadProgress:
        return LoadProgress(self._size, self._read, self._copying, time.monotonic() - self._started)

    def _tell(self) -> None:
        while not self._ended.wait(self._tick or interval(self.snapshot().seconds)):
            log.info("%s: %s", self.name, self.snapshot().line())

"""While a scoring job runs, the GIL is handed over sooner, so users' requests do not queue
behind the job's reading and writing (issue 29).

::

    JobManager._run ──► with job_running(): ──► sys.setswitchinterval(JOB_SWITCH_SECONDS)
                                               (the first job in; the last one out puts back
                                               the interval it found)

A job's thread reads and writes the file in Python, holding the GIL, while a user's request
needs it at every step (waitress reads the request, a worker runs the view, the answer comes
back from the model host, waitress writes it). A thread that asks for the GIL waits until the
holder lets go, at the latest after the interpreter's switch interval: 5 ms by default, so a
request that needs the GIL four times behind a busy job waits up to 20 ms. With 0.5 ms it
waits at most a tenth of that. The job loses nothing measurable when no request comes (the
holder is only asked to let go when another thread waits), and a few switches when one does.
The interval is the process's own: it is shortened only while a job runs, and the value found
is put back after the last one.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

JOB_SWITCH_SECONDS = 0.0005

_lock = threading.Lock()
_running = 0
_found = 0.0


@contextlib.contextmanager
def job_running() -> Iterator[None]:
    """The GIL's switch interval shortened while the block runs (and any other job's)."""
    global _running, _found
    with _lock:
        if _running == 0:
            _found = sys.getswitchinterval()
            sys.setswitchinterval(min(_found, JOB_SWITCH_SECONDS))
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                sys.setswitchinterval(_found)

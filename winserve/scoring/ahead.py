"""A job's model calls made one at a time by a thread of their own (issue 29).

::

    job thread:    read chunk k+1 ─► check ─► submit ──┐     write chunk k ─► read chunk k+2 …
    caller thread:                                     └─► model call of chunk k+1 (waits on
                                                           the host, the GIL free) ─► answer

Why: a job's thread used to wait for each chunk's call, and the model host for the job thread
to read and write: on the team's 2-core machine, the demo's 100,000 rows cost the web process
about 0.45 CPU s and the host 0.22, one after the other. With the call made by this thread, the
two overlap. One call at a time: the job's chunks never keep each other company in the pool,
and users' requests still go before the next chunk (``backends.pool``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Ahead:
    """Calls made on one thread, started at the first ``submit``; ``close`` ends it."""

    def __init__(self, name: str = "winserve-job-call") -> None:
        self._name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def submit(self, call: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, self._name)
        return self._executor.submit(call, *args)

    def close(self) -> None:
        """After the call in progress (each has deadlines of its own); the thread ends."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

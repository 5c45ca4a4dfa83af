"""Windows console close: stop cleanly within the ~5 s Windows allows after the X is clicked.

Closing the console window (or logging off) sends CTRL_CLOSE_EVENT to every process attached to
it; the handler runs on a new thread and the process is terminated when it returns or after
about 5 s. A Python signal handler does not get to run then, so winserve registers a console
control handler with ``SetConsoleCtrlHandler``: it asks the server to stop (as Ctrl+C would) and
waits up to ``budget`` seconds for the stop to finish. Ctrl+C and Ctrl+Break are left to
Python's own handling (``KeyboardInterrupt``, SIGBREAK).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from winserve.platform import IS_WINDOWS

CTRL_C_EVENT, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT = 0, 1, 2
CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT = 5, 6
CLOSING_EVENTS = frozenset({CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT})
BUDGET_SECONDS = 4.0  # Windows ends the process about 5 s after CTRL_CLOSE_EVENT

_installed: list[Any] = []  # the ctypes callback must outlive the registration


def make_handler(
    request_stop: Callable[[], None], stopped: threading.Event, budget: float = BUDGET_SECONDS
) -> Callable[[int], bool]:
    """The handler's logic, separate from ctypes so it can be tested on any OS."""

    def handle(event: int) -> bool:
        if event in CLOSING_EVENTS:
            request_stop()
            stopped.wait(budget)
        return False  # let the next handler (Python's, or the default) run too

    return handle


def install_close_handler(request_stop: Callable[[], None], stopped: threading.Event) -> bool:
    """Register the handler on Windows; returns whether one was registered."""
    if not IS_WINDOWS:
        return False
    import ctypes
    from ctypes import wintypes

    handler_type = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)  # type: ignore[attr-defined]
    logic = make_handler(request_stop, stopped)
    callback = handler_type(lambda event: bool(logic(int(event))))
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.SetConsoleCtrlHandler.argtypes = (handler_type, wintypes.BOOL)
    if not kernel32.SetConsoleCtrlHandler(callback, True):
        return False
    _installed.append(callback)
    return True

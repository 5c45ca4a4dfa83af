"""Throttling token guesses per client address (issue 13, item 9: 500 guesses took 1.6 s).

Each attempt is checked and counted under one lock (the check is a constant-time comparison,
microseconds), so requests sent at once cannot slip past the count, and a program sending the
right token from many threads is never counted at all. The first ``FREE`` failures cost
nothing (typing mistakes); from then on each failure locks the address out for twice as long
as the one before (2 s, 4 s, 8 s … at most ``MAX_LOCK``), and attempts meanwhile get 429 with
Retry-After without being compared at all, so a locked-out guesser learns nothing. A right
token forgets the address; so does a quiet ``FORGET`` seconds. At most ``MAX_CLIENTS``
addresses are kept (least recently seen dropped first); IPv6 clients count per /64, the block
one machine usually holds.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE = 5
MAX_LOCK = 60.0
FORGET = 15 * 60.0
MAX_CLIENTS = 4096


@dataclass
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


def client_key(address: str | None) -> str:
    """The address a guesser is counted under."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "?"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class Throttle:
    def __init__(
        self,
        *,
        free: int = FREE,
        max_lock: float = MAX_LOCK,
        forget: float = FORGET,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free, self._max_lock, self._forget = free, max_lock, forget
        self._max_clients, self._clock = max_clients, clock
        self._clients: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def attempt(self, client: str, right: Callable[[], bool]) -> tuple[bool, float]:
        """(whether ``right()`` said yes, seconds ``client`` must wait before it may try). While
        it must wait, ``right`` is not called at all: (False, seconds left)."""
        with self._lock:
            now = self._clock()
            entry = self._clients.get(client)
            if entry is not None and now - entry.last > self._forget:
                entry = None
            if entry is not None and entry.locked_until > now:
                return False, entry.locked_until - now
            if right():
                self._clients.pop(client, None)
                return True, 0.0
            entry = entry or _Entry()
            entry.failures += 1
            entry.last = now
            if entry.failures >= self._free:
                lock = min(self._max_lock, 2.0 ** (entry.failures - self._free + 1))
                entry.locked_until = now + lock
            self._clients[client] = entry
            self._clients.move_to_end(client)
            while len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)
            return False, 0.0

    def __len__(self) -> int:
        return len(self._clients)

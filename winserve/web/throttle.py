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

Many addresses guessing at once (200 loopback addresses, a LAN's worth) each get their free
tries, so wrong tokens are also counted together (issue 28): past ``GLOBAL_PER_MINUTE`` wrong
tokens in a minute, from anywhere, tokens are no longer compared until the minute has passed,
except from an address that sent the right token within ``FORGET`` (a program already in keeps
working; a page with its login cookie is never throttled).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

FREE = 5
MAX_LOCK = 60.0
FORGET = 15 * 60.0
MAX_CLIENTS = 4096
GLOBAL_PER_MINUTE = 100  # ~150,000 guesses a day at most, whatever the number of addresses


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
        global_per_minute: int = GLOBAL_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free, self._max_lock, self._forget = free, max_lock, forget
        self._max_clients, self._clock = max_clients, clock
        self._clients: OrderedDict[str, _Entry] = OrderedDict()
        # the times of the latest wrong tokens, from any address; full and all within a
        # minute: locked for everyone not trusted
        self._recent: deque[float] = deque(maxlen=global_per_minute)
        self._trusted: OrderedDict[str, float] = OrderedDict()  # right token lately: when
        self._lock = threading.Lock()

    def _globally_locked(self, client: str, now: float) -> float:
        """Seconds until wrong tokens from everywhere fall under the minute's budget again (0
        when they are under it, or ``client`` sent the right token lately)."""
        recent = self._recent
        if len(recent) < (recent.maxlen or 0) or now - recent[0] >= 60.0:
            return 0.0
        trusted = self._trusted.get(client)
        if trusted is not None and now - trusted <= self._forget:
            return 0.0
        return 60.0 - (now - recent[0])

    def _trust(self, client: str, now: float) -> None:
        self._trusted[client] = now
        self._trusted.move_to_end(client)
        while len(self._trusted) > self._max_clients:
            self._trusted.popitem(last=False)

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
            everyone = self._globally_locked(client, now)
            if everyone:
                return False, everyone
            if right():
                self._clients.pop(client, None)
                self._trust(client, now)
                return True, 0.0
            self._recent.append(now)
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
